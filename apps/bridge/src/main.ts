import { createLogger, createRedis, describeRedis, type Logger, type RedisSettings } from '@moltage/core';
import { RedisTokenCache, WeChatApiClient } from '@moltage/wechat';
import type { Redis } from 'ioredis';
import { HttpAgentClient } from './adapters/agent-client.js';
import { RoutedOrchestrator } from './adapters/orchestrator-router.js';
import { type Bridge, type BridgeTuning, buildApp } from './app.js';
import { type Config, loadConfig } from './config.js';

export interface RunBridgeOptions {
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Defaults to a JSON logger (pretty with LOG_PRETTY=true) at LOG_LEVEL. */
  log?: Logger;
  /** Stop cleanly on SIGTERM/SIGINT and exit (default true). */
  handleSignals?: boolean;
  /** Internal timing knobs (tests shorten them); production uses the defaults. */
  tuning?: Partial<BridgeTuning>;
}

export interface RunningBridge {
  config: Config;
  bridge: Bridge;
  /** http://host:port the bridge listens on. */
  url: string;
  /** Graceful stop: HTTP, then the worker (finish or hand back), then Redis. */
  close(): Promise<void>;
}

async function connectRedis(
  settings: RedisSettings,
  log: Logger,
  opts: { blocking: boolean },
): Promise<Redis> {
  const redis = createRedis(settings, {
    lazyConnect: true,
    connectTimeout: 5000,
    // Producers fail fast (a push we cannot queue gets 503 and WeChat retries);
    // the blocking reader waits for the connection to come back.
    enableOfflineQueue: opts.blocking,
    maxRetriesPerRequest: opts.blocking ? null : 1,
    // A Redis that hangs must not hang pushes (WeChat gets a 503 and retries) or workers.
    ...(opts.blocking ? {} : { commandTimeout: 3000 }),
    retryStrategy: (times) => Math.min(times * 200, 2000),
    // Commands issued in the same tick go out in one write: far fewer syscalls under load.
    enableAutoPipelining: !opts.blocking,
  });
  redis.on('error', (err) => log.warn({ err: { message: err.message } }, 'redis connection error'));
  try {
    await Promise.race([
      redis.connect(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timed out after 10 s')), 10_000)),
    ]);
  } catch (err) {
    redis.disconnect();
    throw new Error(
      `cannot reach Redis at ${describeRedis(settings)}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return redis;
}

/** QUIT (lets pending replies arrive), or drop the connection if Redis does not answer soon. */
async function quitRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.quit(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('QUIT timed out')), 2000);
      }),
    ]);
  } catch {
    redis.disconnect();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the WeChat Bridge: reads the environment (DESIGN.md), connects to Redis, listens on
 * HOST:PORT and processes the queue until SIGTERM/SIGINT. `moltage bridge` calls this.
 */
export async function runBridge(opts: RunBridgeOptions = {}): Promise<RunningBridge> {
  const config = loadConfig(opts.env ?? process.env);
  const log =
    opts.log ?? createLogger({ name: 'bridge', level: config.LOG_LEVEL, pretty: config.LOG_PRETTY });
  const redis = await connectRedis(config, log, { blocking: false });
  let blocking: Redis;
  try {
    blocking = await connectRedis(config, log, { blocking: true });
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const wechat = new WeChatApiClient({
    appId: config.WECHAT_APPID,
    appSecret: config.WECHAT_APPSECRET,
    baseUrl: config.WECHAT_API_BASE,
    tokenMode: config.WECHAT_TOKEN_MODE,
    tokenCache: new RedisTokenCache(redis),
    onCacheError: (err) => log.warn({ err }, 'access token cache (Redis) failed; continuing without it'),
  });
  const bridge = buildApp({
    config,
    redis,
    blocking,
    wechat,
    orchestrator: new RoutedOrchestrator(
      redis,
      config.ORCHESTRATOR_URL,
      config.ORCHESTRATOR_TOKEN,
      log,
      config.VM_READY_TIMEOUT_MS,
    ),
    agent: new HttpAgentClient(),
    log,
    ...(opts.tuning ? { tuning: opts.tuning } : {}),
  });

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      log.info('bridge stopping');
      await bridge.close();
      await Promise.allSettled([quitRedis(redis), quitRedis(blocking)]);
      log.info('bridge stopped');
    })();
    return closing;
  };

  try {
    await bridge.start();
    await bridge.http.listen({ port: config.PORT, host: config.HOST });
  } catch (err) {
    await bridge.close().catch(() => {});
    redis.disconnect();
    blocking.disconnect();
    throw err;
  }
  const addr = bridge.http.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.PORT;
  const url = `http://${config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST}:${port}`;
  log.info(
    { url, consumer: bridge.worker.consumer, safeMode: Boolean(config.WECHAT_ENCODING_AES_KEY) },
    `bridge listening on ${url}`,
  );

  if (opts.handleSignals !== false) {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'signal received');
      close().then(
        () => process.exit(0),
        (err) => {
          log.error({ err }, 'error while stopping');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  return { config, bridge, url, close };
}
