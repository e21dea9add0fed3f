import { createLogger } from '@moltage/core';
import { SimulatorClient, type StartedSimulator, startSimulator } from '@moltage/simulator';
import {
  type ChildService,
  freePort,
  type RedisServer,
  spawnService,
  startRedis,
  waitFor,
} from '@moltage/testkit';
import { buildXml, sha1Signature, WXBizMsgCrypt } from '@moltage/wechat';
import { Redis } from 'ioredis';
import type { BridgeTuning } from '../app.js';
import { type RunningBridge, runBridge } from '../main.js';
import { logSink } from './log-sink.js';
import { startTestAgent, type TestAgent } from './test-agent.js';
import { startTestOrchestrator, type TestOrchestrator } from './test-orchestrator.js';

export type Mode = 'plaintext' | 'compatible' | 'safe';

/** Short timings for tests; production defaults live in app.ts. */
export const FAST_TUNING: Partial<BridgeTuning> = {
  entryRetryBaseMs: 50,
  sendRetryBaseMs: 20,
  typingFirstAfterMs: 100,
  typingRefreshMs: 200,
  sweepEveryMs: 100,
  coldStartNoticeMs: 3000,
  vmPollMs: 50,
  readBlockMs: 200,
};

export interface HarnessOptions {
  mode?: Mode;
  /** Extra bridge environment. */
  env?: Record<string, string>;
  tuning?: Partial<BridgeTuning>;
  /** Start an in-process bridge (default true). */
  bridge?: boolean;
  /** Simulator: messages per user action. */
  messageBudget?: number;
}

export interface Harness {
  redis: RedisServer;
  /** A client connection to the test Redis. */
  r: Redis;
  sim: StartedSimulator;
  client: SimulatorClient;
  agent: TestAgent;
  orch: TestOrchestrator;
  /** The bridge environment (PORT and BRIDGE_BASE_URL of the in-process bridge). */
  env: Record<string, string>;
  bridge: RunningBridge | null;
  /** http://127.0.0.1:<port> of the in-process bridge. */
  bridgeUrl: string;
  /** Every log line of in-process bridges. */
  logs(): string;
  /** Another in-process bridge on the same Redis (a second process, as far as the queue knows). */
  startBridge(env?: Record<string, string>, tuning?: Partial<BridgeTuning>): Promise<RunningBridge>;
  /** A bridge as a child process (`node apps/bridge/dist/main-cli.js`). */
  spawnBridge(env?: Record<string, string>): Promise<{ svc: ChildService; url: string }>;
  /** Points the simulator's pushes at a bridge. */
  pointSimAt(bridgeUrl: string): void;
  /** A following user whose welcome message arrived; returns the openid. */
  newUser(): Promise<string>;
  /** Texts the user received so far (customer-service messages). */
  texts(openid: string): Promise<string[]>;
  /** Waits until the user has `n` messages; returns their texts. */
  waitTexts(openid: string, n: number, timeoutMs?: number): Promise<string[]>;
  /** Waits until every queued entry is processed and no worker holds a user. */
  idle(timeoutMs?: number): Promise<void>;
  /** Builds a signed push as WeChat sends it, for hand-made requests. */
  signedPush(
    xmlFields: Record<string, string | number>,
    opts?: { mode?: Mode; timestamp?: number },
  ): {
    query: URLSearchParams;
    body: string;
  };
  close(): Promise<void>;
}

export const DIST_MAIN = new URL('../../dist/main-cli.js', import.meta.url).pathname;

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const r = new Redis(redis.url, { lazyConnect: true });
    r.on('error', () => {});
    await r.connect();
    cleanups.push(async () => r.disconnect());
    const mode = opts.mode ?? 'plaintext';
    const sim = await startSimulator({
      account: { mode },
      ...(opts.messageBudget !== undefined ? { messageBudget: opts.messageBudget } : {}),
    });
    cleanups.push(() => sim.close());
    const agent = await startTestAgent();
    cleanups.push(() => agent.close());
    const orch = await startTestOrchestrator({ agentUrl: agent.url });
    cleanups.push(() => orch.close());
    agent.tokens = () => orch.agentTokens();

    const account = sim.account;
    const baseEnv: Record<string, string> = {
      HOST: '127.0.0.1',
      WECHAT_APPID: account.appId,
      WECHAT_APPSECRET: account.appSecret,
      WECHAT_TOKEN: account.token,
      ...(account.encodingAesKey ? { WECHAT_ENCODING_AES_KEY: account.encodingAesKey } : {}),
      WECHAT_API_BASE: sim.url,
      REDIS_URL: redis.url,
      ORCHESTRATOR_URL: orch.url,
      ORCHESTRATOR_TOKEN: orch.token,
      SSH_HOST: 'ssh.example.test',
      SSH_PORT: '2222',
      VM_READY_TIMEOUT_MS: '10000',
      LOG_LEVEL: 'debug',
      BRIDGE_CLAIM_IDLE_MS: '1000',
      BRIDGE_SHUTDOWN_GRACE_MS: '500',
      ...opts.env,
    };
    const { sink, text: logText } = logSink();
    const bridges: RunningBridge[] = [];
    const children: ChildService[] = [];
    cleanups.push(async () => {
      for (const c of children) await c.stop('SIGKILL').catch(() => {});
    });
    cleanups.push(async () => {
      for (const b of bridges) await b.close().catch(() => {});
    });

    const startBridge = async (env: Record<string, string> = {}, tuning?: Partial<BridgeTuning>) => {
      const port = await freePort();
      const full: Record<string, string> = {
        ...baseEnv,
        PORT: String(port),
        BRIDGE_BASE_URL: `http://127.0.0.1:${port}`,
        ...env,
      };
      const b = await runBridge({
        env: full,
        log: createLogger({ name: 'bridge', level: full['LOG_LEVEL'] ?? 'debug', destination: sink }),
        handleSignals: false,
        tuning: { ...FAST_TUNING, ...opts.tuning, ...tuning },
      });
      bridges.push(b);
      return b;
    };

    const h: Harness = {
      redis,
      r,
      sim,
      client: new SimulatorClient(sim.url),
      agent,
      orch,
      env: baseEnv,
      bridge: null,
      bridgeUrl: '',
      logs: logText,
      startBridge,
      async spawnBridge(env = {}) {
        const port = await freePort();
        const full = {
          ...process.env,
          ...baseEnv,
          PORT: String(port),
          BRIDGE_BASE_URL: `http://127.0.0.1:${port}`,
          ...env,
        };
        const svc = spawnService(process.execPath, [DIST_MAIN], { env: full });
        children.push(svc);
        await svc.waitForOutput(/bridge listening/, 20_000);
        return { svc, url: `http://127.0.0.1:${port}` };
      },
      pointSimAt(url) {
        sim.sim.updateAccount({ bridgeUrl: `${url}/wechat` });
      },
      async newUser() {
        const { user } = await h.client.createUser({ follow: true });
        await h.client.waitForInbox(user.openid, 1, { timeoutMs: 15_000 });
        return user.openid;
      },
      async texts(openid) {
        return (await h.client.inbox(openid)).map((e) => e.text ?? e.preview);
      },
      async waitTexts(openid, n, timeoutMs = 15_000) {
        return (await h.client.waitForInbox(openid, n, { timeoutMs })).map((e) => e.text ?? e.preview);
      },
      async idle(timeoutMs = 15_000) {
        await waitFor(
          async () => {
            const [depth, leases, pending] = await Promise.all([
              r.get('queue:depth'),
              r.keys('lease:*'),
              r.xpending('queue:ready', 'bridge').catch(() => [0]) as Promise<unknown[]>,
            ]);
            return Number(depth ?? 0) === 0 && leases.length === 0 && Number(pending[0] ?? 0) === 0;
          },
          { timeoutMs, what: 'the bridge queue to be idle' },
        );
      },
      signedPush(fields, o = {}) {
        const m = o.mode ?? mode;
        const timestamp = String(o.timestamp ?? Math.floor(Date.now() / 1000));
        const nonce = String(Math.floor(Math.random() * 1e9));
        const xml = buildXml(fields);
        const query = new URLSearchParams({
          timestamp,
          nonce,
          signature: sha1Signature(account.token, timestamp, nonce),
          openid: String(fields['FromUserName'] ?? ''),
        });
        if (m === 'plaintext') return { query, body: xml };
        const crypt = new WXBizMsgCrypt({
          token: account.token,
          encodingAesKey: account.encodingAesKey as string,
          appId: account.appId,
        });
        const encrypt = crypt.encrypt(xml);
        query.set('encrypt_type', 'aes');
        query.set('msg_signature', sha1Signature(account.token, timestamp, nonce, encrypt));
        return {
          query,
          body: buildXml({ ToUserName: String(fields['ToUserName'] ?? ''), Encrypt: encrypt }),
        };
      },
      close: cleanup,
    };
    if (opts.bridge !== false) {
      const b = await startBridge();
      h.bridge = b;
      h.bridgeUrl = b.url;
      h.pointSimAt(b.url);
    }
    return h;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** POSTs a hand-made push to a bridge. */
export async function postPush(
  bridgeUrl: string,
  push: { query: URLSearchParams; body: string },
): Promise<{ status: number; body: string; contentType: string | null }> {
  const res = await fetch(`${bridgeUrl}/wechat?${push.query.toString()}`, {
    method: 'POST',
    headers: { 'content-type': 'text/xml' },
    body: push.body,
  });
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') };
}

export { waitFor };
