import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { deferredChild, type Logger } from '@moltage/core';
import { type WeChatApiClient, WXBizMsgCrypt } from '@moltage/wechat';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Redis } from 'ioredis';
import type { Resolver } from './adapters/address-guard.js';
import { AgentWaits } from './adapters/agent-waits.js';
import { ConsoleJournal } from './adapters/console-journal.js';
import { SendLedger } from './adapters/ledger.js';
import { RedisQueue } from './adapters/queue.js';
import { QueueWorker } from './adapters/queue-worker.js';
import { ReplyPages, UserStore } from './adapters/user-store.js';
import { WeChatSender } from './adapters/wechat-outbound.js';
import type { Config } from './config.js';
import type { AgentClient, Orchestrator } from './domain/ports.js';
import { EntryProcessor } from './handlers/processor.js';
import { TypingIndicator } from './handlers/typing.js';
import { adminRoutes } from './http/admin-routes.js';
import { callbackRoute } from './http/callback-route.js';
import { opsRoutes } from './http/ops-routes.js';
import { wechatRoutes } from './http/wechat-routes.js';
import { createMetrics, type Metrics } from './metrics.js';
import { PushPressure } from './push-pressure.js';

/** Knobs that are constants in production; tests shorten them. */
export interface BridgeTuning {
  /** Base of the exponential backoff between retries of a failed entry. */
  entryRetryBaseMs: number;
  /** Base of the backoff between retries of a failed customer-service send. */
  sendRetryBaseMs: number;
  sendAttempts: number;
  /** The typing indicator shows once an agent took this long without answering. */
  typingFirstAfterMs: number;
  /** Typing indicator refresh (WeChat shows it for 15 s). */
  typingRefreshMs: number;
  /** How often expired agent waits are turned into timeout notices. */
  sweepEveryMs: number;
  /** After this long a cold start is announced to the user. */
  coldStartNoticeMs: number;
  vmPollMs: number;
  /** How long a queue read blocks. */
  readBlockMs: number;
  /** How often the console page refreshes itself. */
  consolePollMs: number;
  /** Pushes waiting for their ack at which queue work steps aside (see PushPressure). */
  pushHighWater: number;
  /** How long pressure lasts after that mark was last reached. */
  pushCalmMs: number;
  /** The longest one queue step steps aside for acks. */
  pushMaxDeferMs: number;
}

export const DEFAULT_TUNING: BridgeTuning = {
  entryRetryBaseMs: 1000,
  sendRetryBaseMs: 500,
  sendAttempts: 4,
  typingFirstAfterMs: 1000,
  typingRefreshMs: 10_000,
  sweepEveryMs: 1000,
  coldStartNoticeMs: 3000,
  vmPollMs: 500,
  readBlockMs: 1000,
  consolePollMs: 3000,
  pushHighWater: 16,
  pushCalmMs: 200,
  pushMaxDeferMs: 1000,
};

export interface BridgeDeps {
  config: Config;
  /** Commands (fail fast). */
  redis: Redis;
  /** A second connection for blocking queue reads; the bridge disconnects it on close. */
  blocking: Redis;
  wechat: WeChatApiClient;
  orchestrator: Orchestrator;
  agent: AgentClient;
  log: Logger;
  resolver?: Resolver;
  now?: () => number;
  tuning?: Partial<BridgeTuning>;
  /** Consumer name in the `bridge` group; unique per process by default. */
  consumer?: string;
}

export interface Bridge {
  http: FastifyInstance;
  worker: QueueWorker;
  queue: RedisQueue;
  metrics: Metrics;
  /** Creates the consumer group and starts the worker and the reply-timeout sweeper. */
  start(): Promise<void>;
  /** Stops taking pushes, finishes or hands back in-flight work. Does not close Redis. */
  close(): Promise<void>;
}

/** Builds the bridge from its dependencies. Never reads the environment and never listens. */
export function buildApp(deps: BridgeDeps): Bridge {
  const { config, redis, log } = deps;
  const tuning = { ...DEFAULT_TUNING, ...deps.tuning };
  const now = deps.now ?? Date.now;
  const queue = new RedisQueue(redis);
  const metrics = createMetrics(() => queue.stats());
  const ledger = new SendLedger(redis);
  const users = new UserStore(redis);
  const pages = new ReplyPages(redis, config.REPLY_PAGE_TTL_S);
  const waits = new AgentWaits(redis);
  const wechat = new WeChatSender(deps.wechat, metrics, log, {
    attempts: tuning.sendAttempts,
    baseMs: tuning.sendRetryBaseMs,
  });
  const typing = new TypingIndicator(wechat, waits, log, {
    firstAfterMs: tuning.typingFirstAfterMs,
    refreshMs: tuning.typingRefreshMs,
    maxMs: config.AGENT_REPLY_TIMEOUT_MS,
  });
  const processor = new EntryProcessor({
    users,
    pages,
    ledger,
    waits,
    orchestrator: deps.orchestrator,
    agent: deps.agent,
    wechat,
    typing,
    metrics,
    now,
    ...(deps.resolver ? { resolver: deps.resolver } : {}),
    config: {
      baseUrl: config.BRIDGE_BASE_URL,
      sshHost: config.SSH_HOST,
      sshPort: config.SSH_PORT,
      vmReadyTimeoutMs: config.VM_READY_TIMEOUT_MS,
      agentReplyTimeoutMs: config.AGENT_REPLY_TIMEOUT_MS,
      bindAllowPrivate: config.BIND_ALLOW_PRIVATE,
      sshOtpTtlS: config.SSH_OTP_TTL_S,
      coldStartNoticeMs: tuning.coldStartNoticeMs,
      vmPollMs: tuning.vmPollMs,
    },
  });
  const pressure = new PushPressure({
    highWater: tuning.pushHighWater,
    calmMs: tuning.pushCalmMs,
    maxDeferMs: tuning.pushMaxDeferMs,
  });
  const consumer = deps.consumer ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const worker = new QueueWorker({
    queue,
    blocking: deps.blocking,
    handler: processor,
    attempts: ledger,
    log,
    metrics,
    pressure,
    options: {
      consumer,
      concurrency: config.BRIDGE_WORKER_CONCURRENCY,
      claimIdleMs: config.BRIDGE_CLAIM_IDLE_MS,
      retryBaseMs: tuning.entryRetryBaseMs,
      blockMs: tuning.readBlockMs,
    },
  });

  const crypt = config.WECHAT_ENCODING_AES_KEY
    ? new WXBizMsgCrypt({
        token: config.WECHAT_TOKEN,
        encodingAesKey: config.WECHAT_ENCODING_AES_KEY,
        appId: config.WECHAT_APPID,
      })
    : null;

  const http = Fastify({
    loggerInstance: log.child(
      {},
      {
        serializers: {
          // Never log query strings: callback URLs carry tokens, WeChat's carry signatures.
          req: (req: { method?: string; url?: string }) => ({
            method: req.method,
            path: req.url?.split('?')[0],
          }),
        },
      },
    ) as FastifyBaseLogger,
    // The request's child logger (request id) is made only when the request logs something.
    childLoggerFactory: (logger, bindings, opts) =>
      deferredChild(logger as Logger, bindings, opts) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
  });
  // The web console (/admin) and its message log exist only with ADMIN_TOKEN set.
  const journal = config.ADMIN_TOKEN ? new ConsoleJournal(redis, log) : undefined;
  void http.register(wechatRoutes, {
    token: config.WECHAT_TOKEN,
    crypt,
    queue,
    metrics,
    now,
    journal,
    pressure,
  });
  void http.register(callbackRoute, { users, queue, waits, metrics, now, journal });
  void http.register(adminRoutes, {
    config,
    redis,
    queue,
    metrics,
    users,
    journal,
    now,
    pollMs: tuning.consolePollMs,
  });
  void http.register(opsRoutes, { redis, queue, pages, metrics, pageTtlS: config.REPLY_PAGE_TTL_S });

  let sweeper: NodeJS.Timeout | undefined;
  let sweeping = false;
  let closed = false;

  return {
    http,
    worker,
    queue,
    metrics,
    async start() {
      await queue.init();
      worker.start();
      sweeper = setInterval(() => {
        if (sweeping) return;
        sweeping = true;
        waits
          .sweep(now())
          .then((n) => {
            if (n > 0) log.info({ count: n }, 'agent replies timed out; users will be told');
          })
          .catch((err) => log.warn({ err }, 'sweeping agent waits failed'))
          .finally(() => {
            sweeping = false;
          });
      }, tuning.sweepEveryMs);
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweeper);
      await http.close();
      await worker.stop(config.BRIDGE_SHUTDOWN_GRACE_MS);
      typing.close();
    },
  };
}
