import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { createLogger, createRedis, describeRedis, type Logger } from '@moltage/core';
import { ensureGatewayKeys, type GatewayKeys } from './adapters/key-files.js';
import { HostAwareVmDirectory, RoutedVmControl } from './adapters/orchestrator-router.js';
import {
  RedisCredentialStore,
  RedisFailureCounter,
  RedisHostKeyPins,
  RedisVmDirectory,
} from './adapters/redis-store.js';
import { buildGateway, type Gateway } from './app.js';
import { type Config, loadConfig } from './config.js';
import { createStatusServer } from './http/status-server.js';
import { createMetrics } from './metrics.js';

export interface RunningSshGateway {
  config: Config;
  gateway: Gateway;
  keys: GatewayKeys;
  /** The SSH port actually bound (LISTEN_ADDR may say 0). */
  port: number;
  /** `http://host:port` of the status server, or null when METRICS_ADDR=off. */
  statusUrl: string | null;
  logger: Logger;
  /** SSH listener and connections → status server → Redis. Idempotent. */
  close(): Promise<void>;
}

export interface RunSshGatewayOptions {
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
}

/** The listening part both servers share (ssh2's Server and node:http's). */
interface Listenable {
  listen(port: number, host: string): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'listening', listener: () => void): unknown;
}

function listen(server: Listenable, host: string, port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: Error) =>
      reject(new Error(`cannot listen on ${host}:${port} (${what}): ${err.message}`)),
    );
    server.once('listening', () => resolve());
    server.listen(port, host);
  });
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Starts the SSH gateway from environment variables (`moltage ssh-gateway`): loads or creates
 * its keys, connects to Redis, listens on LISTEN_ADDR and serves status on METRICS_ADDR.
 */
export async function runSshGateway(opts: RunSshGatewayOptions = {}): Promise<RunningSshGateway> {
  const config = loadConfig(opts.env ?? process.env);
  const logger =
    opts.logger ?? createLogger({ name: 'ssh-gateway', level: config.LOG_LEVEL, pretty: config.LOG_PRETTY });

  // Process-wide, read by V8 each time it sizes the heap after a full GC: see GC_HEAP_GROWING_PERCENT.
  if (config.GC_HEAP_GROWING_PERCENT > 0) {
    setFlagsFromString(`--heap-growing-percent=${config.GC_HEAP_GROWING_PERCENT}`);
  }

  const keys = await ensureGatewayKeys(config.HOST_KEY_PATH);
  logger.info(
    { hostKey: keys.host.fingerprint, created: keys.host.created, path: keys.host.path },
    keys.host.created ? 'generated the SSH host key' : 'loaded the SSH host key',
  );
  logger.info(
    {
      upstreamKey: keys.upstream.fingerprint,
      created: keys.upstream.created,
      publicKeyPath: `${keys.upstream.path}.pub`,
    },
    'VMs must trust this public key (orchestrator GATEWAY_SSH_PUBKEY_PATH)',
  );

  const redis = createRedis(config, {
    maxRetriesPerRequest: 2,
    lazyConnect: true,
    enableOfflineQueue: true,
  });
  let lastRedisError: Error | undefined;
  redis.on('error', (err: Error) => {
    lastRedisError = err;
    logger.warn({ err: err.message }, 'redis error');
  });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    const why = (lastRedisError ?? (err as Error)).message;
    throw new Error(`cannot connect to Redis at ${describeRedis(config)}: ${why}`);
  }

  const metrics = createMetrics();
  const gateway = buildGateway({
    hostKeys: [keys.host.privateKey],
    upstreamPrivateKey: keys.upstream.privateKey,
    credentials: new RedisCredentialStore(redis),
    failures: new RedisFailureCounter(redis, config.AUTH_FAIL_WINDOW_S),
    pins: new RedisHostKeyPins(redis),
    directory: new HostAwareVmDirectory(new RedisVmDirectory(redis), redis),
    control: new RoutedVmControl({
      redis,
      defaultUrl: config.ORCHESTRATOR_URL,
      token: config.ORCHESTRATOR_TOKEN,
      startTimeoutMs: config.VM_START_TIMEOUT_MS,
      logger,
    }),
    logger,
    metrics,
    settings: {
      vmUser: config.VM_SSH_USER,
      legacyPassword: config.VM_SSH_PASS,
      limits: { perIp: config.AUTH_FAIL_LIMIT_PER_IP, perUser: config.AUTH_FAIL_LIMIT_PER_USER },
      maxAuthTries: config.MAX_AUTH_TRIES,
      loginGraceMs: config.LOGIN_GRACE_S * 1000,
      idleTimeoutMs: config.IDLE_TIMEOUT_S * 1000,
      touchIntervalMs: config.TOUCH_INTERVAL_S * 1000,
      upstreamConnectTimeoutMs: config.UPSTREAM_CONNECT_TIMEOUT_MS,
      maxConnections: config.MAX_CONNECTIONS,
    },
  });
  gateway.server.on('error', (err: Error) => logger.error({ err: err.message }, 'SSH listener error'));

  const status = config.METRICS_ADDR
    ? createStatusServer({
        registry: metrics.registry,
        health: async () => {
          const redisOk = await redis
            .ping()
            .then((r) => r === 'PONG')
            .catch(() => false);
          return { ok: redisOk, redis: redisOk ? 'ok' : 'down', ...gateway.stats() };
        },
      })
    : null;
  status?.on('error', (err: Error) => logger.error({ err: err.message }, 'status listener error'));

  let port: number;
  let statusUrl: string | null = null;
  try {
    await listen(gateway.server, config.LISTEN_ADDR.host, config.LISTEN_ADDR.port, 'LISTEN_ADDR');
    port = (gateway.server.address() as AddressInfo).port;
    if (status && config.METRICS_ADDR) {
      await listen(status, config.METRICS_ADDR.host, config.METRICS_ADDR.port, 'METRICS_ADDR');
      statusUrl = `http://${urlHost(config.METRICS_ADDR.host)}:${(status.address() as AddressInfo).port}`;
    }
  } catch (err) {
    await gateway.close(1000);
    status?.close();
    redis.disconnect();
    throw err;
  }
  logger.info(
    { listen: `${urlHost(config.LISTEN_ADDR.host)}:${port}`, status: statusUrl },
    'SSH gateway listening',
  );

  let closing: Promise<void> | undefined;
  return {
    config,
    gateway,
    keys,
    port,
    statusUrl,
    logger,
    close() {
      closing ??= (async () => {
        await gateway.close();
        if (status) await new Promise<void>((resolve) => status.close(() => resolve()));
        await redis.quit().catch(() => redis.disconnect());
      })();
      return closing;
    },
  };
}
