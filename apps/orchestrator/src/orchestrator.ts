import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger, type Logger, parseEnv } from '@moltage/core';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { selectDriver } from './adapters/driver-select.js';
import { createFirecrackerDriver } from './adapters/firecracker/index.js';
import { imageResolver } from './adapters/image-resolver.js';
import { QemuDriver } from './adapters/qemu/qemu-driver.js';
import { VmStore } from './adapters/redis/vm-store.js';
import { TapNetwork } from './adapters/tap-network.js';
import { UserNetwork } from './adapters/user-network.js';
import { buildApp, createMetrics } from './app.js';
import { type Config, configSchema } from './config.js';
import type { VmDriver } from './domain/driver.js';
import { parseCidr } from './domain/ip-pool.js';
import type { NetworkProvider } from './domain/network.js';
import { VmManager } from './vm-manager.js';

export interface RunningOrchestrator {
  app: FastifyInstance;
  url: string;
  config: Config;
  manager: VmManager;
  /** HTTP → reaper → VMs (unless VM_KEEP_ON_EXIT) → Redis. */
  close(): Promise<void>;
}

export interface RunOrchestratorOptions {
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Replaces the firecracker driver (tests point it at a fake Firecracker). */
  firecrackerDriver?: (config: Config, logger: Logger) => VmDriver;
}

/** Starts the orchestrator from environment variables (`moltage orchestrator`). */
export async function runOrchestrator(opts: RunOrchestratorOptions = {}): Promise<RunningOrchestrator> {
  const config = parseEnv(configSchema, opts.env ?? process.env);
  const logger = opts.logger ?? createLogger({ name: 'orchestrator', level: config.LOG_LEVEL });
  const subnet = parseCidr(config.VM_SUBNET);

  await mkdir(config.VM_DATA_DIR, { recursive: true, mode: 0o700 });
  await mkdir(config.SOCKET_DIR, { recursive: true, mode: 0o700 });

  const image = imageResolver({
    imageDir: config.VM_IMAGE_DIR,
    image: config.VM_IMAGE,
    kernelPath: config.KERNEL_PATH,
    baseRootfsPath: config.BASE_ROOTFS_PATH,
    initrdPath: config.INITRD_PATH,
  });
  const probeKernelPath =
    config.KERNEL_PATH ??
    (await image()
      .then((i) => i.kernelPath)
      .catch(() => join(config.VM_IMAGE_DIR, config.VM_IMAGE, 'vmlinuz')));
  const probeCacheFile = join(config.VM_DATA_DIR, '.kvm-probe.json');
  const selection = await selectDriver({
    mode: config.VM_DRIVER,
    firecrackerBin: config.FIRECRACKER_BIN,
    qemuBin: config.QEMU_BIN,
    probeKernelPath,
    probeCacheFile,
    factories: {
      qemu: () =>
        new QemuDriver({
          qemuBin: config.QEMU_BIN,
          probeKernelPath,
          probeCacheFile,
          accel: config.QEMU_ACCEL,
          tcgTbMib: config.QEMU_TCG_TB_MIB || undefined,
          logger,
        }),
      firecracker: () =>
        opts.firecrackerDriver
          ? opts.firecrackerDriver(config, logger)
          : createFirecrackerDriver({
              firecrackerBin: config.FIRECRACKER_BIN,
              ...(config.JAILER_BIN
                ? {
                    jailer: {
                      bin: config.JAILER_BIN,
                      uid: config.JAILER_UID,
                      gid: config.JAILER_GID,
                      chrootBaseDir: config.JAILER_CHROOT_BASE_DIR,
                    },
                  }
                : {}),
              stopTimeoutMs: config.VM_STOP_TIMEOUT_MS,
              logger,
            }),
    },
    logger,
  });
  if (selection.driver) logger.info({ driver: selection.driver.name }, 'VM driver selected');
  else logger.warn({ reason: selection.problem }, 'no VM driver can run here; VM creation will answer 503');

  let gatewaySshPubKey: string | undefined;
  if (config.GATEWAY_SSH_PUBKEY_PATH) {
    const text = (await readFile(config.GATEWAY_SSH_PUBKEY_PATH, 'utf8')).trim();
    if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+) [A-Za-z0-9+/=]+/.test(text)) {
      throw new Error(
        `GATEWAY_SSH_PUBKEY_PATH ${config.GATEWAY_SSH_PUBKEY_PATH} is not an OpenSSH public key`,
      );
    }
    gatewaySshPubKey = text.split('\n')[0];
  } else {
    logger.warn('GATEWAY_SSH_PUBKEY_PATH is not set: the SSH gateway cannot log in to VMs');
  }

  const guestPorts = { ssh: 22, agent: 8789 };
  const network: NetworkProvider =
    config.VM_NETWORK === 'user'
      ? new UserNetwork(subnet, config.GATEWAY_IP, guestPorts)
      : new TapNetwork({
          bridge: config.BRIDGE_NAME,
          subnet,
          gatewayIp: config.GATEWAY_IP,
          callbackPort: config.CALLBACK_PORT,
          guestPorts,
        });
  let networkProblem: string | undefined;
  try {
    await network.init();
  } catch (err) {
    networkProblem = (err as Error).message;
    logger.warn({ reason: networkProblem }, 'VM networking is not available; VM creation will answer 503');
  }

  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3, lazyConnect: true });
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis error'));
  await redis.connect();

  const registry = new Registry();
  const manager = new VmManager({
    store: new VmStore(redis, subnet.cidr),
    driver: networkProblem ? undefined : selection.driver,
    driverProblem: networkProblem ?? selection.problem,
    network,
    image,
    logger,
    metrics: createMetrics(registry),
    config: {
      subnet,
      gatewayIp: config.GATEWAY_IP,
      defaultVcpu: config.DEFAULT_VCPU,
      defaultMemMib: config.DEFAULT_MEM_MIB,
      dataDiskMib: config.VM_DATA_DISK_MIB,
      vmDataDir: config.VM_DATA_DIR,
      socketDir: config.SOCKET_DIR,
      readyTimeoutMs: config.VM_READY_TIMEOUT_MS,
      stopTimeoutMs: config.VM_STOP_TIMEOUT_MS,
      maxVms: config.MAX_VMS,
      llm: { baseUrl: config.LLM_BASE_URL, apiKey: config.LLM_API_KEY, model: config.LLM_MODEL },
      gatewaySshPubKey,
    },
  });
  await manager.reconcile();
  manager.startIdleReaper(
    config.VM_IDLE_TIMEOUT_S,
    Math.min(30_000, Math.max(1000, (config.VM_IDLE_TIMEOUT_S * 1000) / 4)),
  );

  const app = await buildApp({
    manager,
    logger,
    token: config.ORCHESTRATOR_TOKEN,
    registry,
    hostFacts: async () => ({
      firecracker: selection.firecracker,
      kvm: selection.kvm,
      network: config.VM_NETWORK,
      image: config.VM_IMAGE,
    }),
  });
  if (!config.ORCHESTRATOR_TOKEN)
    logger.warn('ORCHESTRATOR_TOKEN is not set: the API accepts unauthenticated requests');
  const url = await app.listen({ port: config.PORT, host: config.HOST });

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await app.close();
      manager.stopIdleReaper();
      if (!config.VM_KEEP_ON_EXIT) {
        const live = (await manager.list()).filter((vm) => vm.state === 'running' || vm.state === 'creating');
        await Promise.all(
          live.map((vm) =>
            manager
              .stop(vm.user_id)
              .catch((err) => logger.warn({ err, openid: vm.user_id }, 'stop on exit failed')),
          ),
        );
      }
      redis.disconnect();
    })();
    return closing;
  };
  return { app, url, config, manager, close };
}
