import { mkdir, readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { createLogger, createRedis, describeRedis, type Logger, parseEnv } from '@moltage/core';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { selectDriver } from './adapters/driver-select.js';
import { createFirecrackerDriver } from './adapters/firecracker/index.js';
import { imageResolver } from './adapters/image-resolver.js';
import { QemuDriver } from './adapters/qemu/qemu-driver.js';
import { HostRegistry } from './adapters/redis/host-registry.js';
import { VmStore } from './adapters/redis/vm-store.js';
import { TapNetwork } from './adapters/tap-network.js';
import { UserNetwork } from './adapters/user-network.js';
import { buildApp, createMetrics } from './app.js';
import { type Config, configSchema } from './config.js';
import type { VmDriver } from './domain/driver.js';
import { parseCidr } from './domain/ip-pool.js';
import type { NetworkProvider } from './domain/network.js';
import { VmManager } from './vm-manager.js';

/** How often running VMs' processes are checked (a VM killed or crashed frees its resources). */
const EXIT_WATCH_MS = 5000;

export interface RunningOrchestrator {
  app: FastifyInstance;
  url: string;
  config: Config;
  manager: VmManager;
  /** This host in the host registry (HOST_ID, ORCHESTRATOR_PUBLIC_URL, heartbeat). */
  registry: HostRegistry;
  /** The URL other services reach this orchestrator at (registered in `host:<HOST_ID>`). */
  publicUrl: string;
  /** Registry entry → HTTP → reaper → VMs (unless VM_KEEP_ON_EXIT) → Redis. */
  close(): Promise<void>;
}

/**
 * ORCHESTRATOR_PUBLIC_URL's default: http://HOST:PORT, where a wildcard HOST (0.0.0.0, ::) is
 * replaced by the machine's first non-internal IPv4 address (127.0.0.1 when it has none).
 */
export function defaultPublicUrl(host: string, port: number): string {
  let addr = host;
  if (host === '0.0.0.0' || host === '::' || host === '') {
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
    addr = external?.address ?? '127.0.0.1';
  }
  return `http://${addr.includes(':') ? `[${addr}]` : addr}:${port}`;
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

  // Redis and the host registry first: a clash with another host is refused before anything
  // on this machine (network, VMs, locks) is touched.
  const redis = createRedis(config, { maxRetriesPerRequest: 3, lazyConnect: true });
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis error'));
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot connect to Redis at ${describeRedis(config)}: ${(err as Error).message}`);
  }

  let publicUrl =
    config.ORCHESTRATOR_PUBLIC_URL ?? (config.PORT !== 0 ? defaultPublicUrl(config.HOST, config.PORT) : null);
  let manager: VmManager | undefined;
  const hosts = new HostRegistry({
    redis,
    hostId: config.HOST_ID,
    subnet: subnet.cidr,
    network: config.VM_NETWORK,
    bridge: config.VM_NETWORK === 'tap' ? config.BRIDGE_NAME : null,
    socketDir: config.SOCKET_DIR,
    vmDataDir: config.VM_DATA_DIR,
    maxVms: config.MAX_VMS,
    heartbeatMs: config.HOST_HEARTBEAT_MS,
    ttlMs: config.HOST_TTL_MS,
    logger,
    facts: async () => {
      const avail = await manager!.driverAvailability();
      const cap = await manager!.capacity();
      return {
        accepting: avail.ok,
        problem: avail.ok ? null : (avail.reason ?? 'no VM driver'),
        driver: avail.ok ? ((await manager!.driverName()) ?? null) : null,
        activeVms: cap.activeVms,
        vmsMemMib: cap.vmsMemMib,
      };
    },
  });
  try {
    await hosts.checkConflicts(publicUrl);
  } catch (err) {
    redis.disconnect();
    throw err;
  }

  try {
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
            tcgTbMib: config.QEMU_TCG_TB_MIB,
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
            ingressFrom: config.VM_INGRESS_FROM,
          });
    let networkProblem: string | undefined;
    try {
      await network.init();
    } catch (err) {
      networkProblem = (err as Error).message;
      logger.warn({ reason: networkProblem }, 'VM networking is not available; VM creation will answer 503');
    }

    const registry = new Registry();
    manager = new VmManager({
      store: new VmStore(redis, subnet.cidr, config.HOST_ID),
      peers: hosts,
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
        host: { id: config.HOST_ID, url: () => publicUrl },
      },
    });
    await manager.reconcile();
    manager.startExitWatch(EXIT_WATCH_MS);
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
        host_id: config.HOST_ID,
        url: publicUrl,
        firecracker: selection.firecracker,
        kvm: selection.kvm,
        network: config.VM_NETWORK,
        image: config.VM_IMAGE,
      }),
    });
    if (!config.ORCHESTRATOR_TOKEN)
      logger.warn('ORCHESTRATOR_TOKEN is not set: the API accepts unauthenticated requests');
    const url = await app.listen({ port: config.PORT, host: config.HOST });
    publicUrl ??= defaultPublicUrl(config.HOST, (app.server.address() as AddressInfo).port);
    try {
      await hosts.start(publicUrl);
    } catch (err) {
      await app.close();
      manager.stopIdleReaper();
      await manager.stopExitWatch();
      redis.disconnect();
      throw new Error(`cannot register in the host registry: ${(err as Error).message}`, { cause: err });
    }
    logger.info(
      { host: config.HOST_ID, url: publicUrl, subnet: subnet.cidr, maxVms: config.MAX_VMS },
      'registered in the host registry',
    );

    const vms = manager;
    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= (async () => {
        // Leave the registry first: bridges and gateways stop placing new VMs here.
        await hosts.stop().catch((err) => logger.warn({ err }, 'leaving the host registry failed'));
        await app.close();
        vms.stopIdleReaper();
        await vms.stopExitWatch();
        if (!config.VM_KEEP_ON_EXIT) {
          const live = await vms.liveOwn();
          await Promise.all(
            live.map((vm) =>
              vms
                .stop(vm.user_id)
                .catch((err) => logger.warn({ err, openid: vm.user_id }, 'stop on exit failed')),
            ),
          );
        }
        redis.disconnect();
      })();
      return closing;
    };
    return { app, url, config, manager: vms, registry: hosts, publicUrl, close };
  } catch (err) {
    // Anything that fails after connecting (bad key file, port in use, …) must not leave
    // the connection open (in-process callers such as tests and `moltage up` go on).
    redis.disconnect();
    throw err;
  }
}
