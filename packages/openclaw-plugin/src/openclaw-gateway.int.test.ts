import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type StartedSimulator, startSimulator } from '@moltage/simulator';
import { type ChildService, freePort, spawnService, waitFor } from '@moltage/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentConfig,
  buildPlugin,
  isolatedEnv,
  openclawRuntime,
  patchConfig,
  run,
  stagePlugin,
} from './test-support/openclaw-runtime.js';
import { type RecordingServer, startRecordingServer } from './test-support/recording-server.js';

const AUTH_TOKEN = 'webhook-token-0123456789';
const LLM_KEY = 'sk-moltage-test';

/**
 * The plugin in the real OpenClaw gateway (pinned version, Node 24 from the runtime, spawned as
 * a child process) with the simulator's fake OpenAI-compatible model: webhook → agent → model
 * → callback.
 */
describe('plugin in a real OpenClaw gateway', () => {
  const { node, cli } = openclawRuntime();
  let root: string;
  let home: string;
  let logFile: string;
  let sim: StartedSimulator;
  let bridge: RecordingServer;
  let gateway: ChildService | undefined;
  let webhookPort: number;
  let gatewayPort: number;
  let ngrokConnectPort: number;

  beforeAll(async () => {
    await buildPlugin();
    root = await mkdtemp(join(tmpdir(), 'moltage-oc-gateway-'));
    home = join(root, 'home');
    logFile = join(root, 'openclaw.log');
    const stage = await stagePlugin(join(root, 'plugin'));
    sim = await startSimulator({ llmApiKey: LLM_KEY, llmModels: ['fake-model'] });
    bridge = await startRecordingServer();
    webhookPort = await freePort();
    ngrokConnectPort = await freePort(); // nothing listens: ngrok's connect URL, unreachable

    const env = isolatedEnv(home);
    await patchConfig(home, { logging: { file: logFile } });
    const install = await run(
      node,
      [cli, 'plugins', 'install', '-l', stage, '--force', '--accept-capabilities'],
      {
        env,
      },
    );
    expect(install.code, install.output).toBe(0);
    gatewayPort = await freePort();
    await patchConfig(
      home,
      agentConfig({
        gatewayPort,
        gatewayToken: 'gateway-token-0123456789',
        llmBaseUrl: `${sim.url}/v1`,
        llmApiKey: LLM_KEY,
        llmModel: 'fake-model',
        webhookPort,
        authToken: AUTH_TOKEN,
        logFile,
        // The tunnel cannot come up from here; the gateway and the webhook must not care.
        webhookExtra: {
          useNgrok: true,
          ngrokAuthToken: 'not-a-real-ngrok-token',
          ngrokServerAddr: `127.0.0.1:${ngrokConnectPort}`,
        },
      }),
    );
    gateway = spawnService(node, [cli, 'gateway', 'run'], { env });
    await waitFor(
      async () => {
        if (gateway?.proc.exitCode !== null)
          throw new Error(`gateway exited:\n${gateway?.output().slice(-3000)}`);
        return (await fetch(`http://127.0.0.1:${webhookPort}/health`)).ok;
      },
      { timeoutMs: 120_000, intervalMs: 200, what: 'the webhook /health of the gateway' },
    );
  }, 300_000);

  afterAll(async () => {
    await gateway?.stop('SIGTERM', 30_000);
    await bridge?.close();
    await sim?.close();
    if (root) await rm(root, { recursive: true, force: true });
  }, 60_000);

  function post(body: unknown) {
    return fetch(`http://127.0.0.1:${webhookPort}/webhook`, {
      method: 'POST',
      headers: { authorization: `Bearer ${AUTH_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  async function callbacksFor(messageId: string, timeoutMs = 120_000) {
    return waitFor(
      () => {
        const found = bridge.requests.filter(
          (r) => (r.json as { message_id?: string })?.message_id === messageId,
        );
        return found.length > 0 ? found : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `a callback for message ${messageId}` },
    );
  }

  /** The fake model's answer to the request that carried `marker` (the user's text). */
  function modelAnswerFor(marker: string): string {
    const request = sim.sim.llmRequests().find((r) => JSON.stringify(r.body).includes(marker));
    if (!request) throw new Error(`the fake model never saw ${marker}`);
    expect(request.status).toBe(200);
    return request.answerPreview;
  }

  it('reports the channel healthy: OpenClaw’s /readyz says ready with nothing failing', async () => {
    const ready = await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${gatewayPort}/readyz`);
        const body = (await res.json()) as { ready?: boolean; failing?: string[] };
        return res.status === 200 ? body : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'GET /readyz answering 200' },
    );
    expect(ready).toMatchObject({ ready: true, failing: [] });
  });

  it('answers a WeChat message with the model’s reply at the callback URL', async () => {
    const res = await post({
      message_id: 'wx-1001',
      openid: 'oUserAlice',
      text: '你好',
      msg_type: 'text',
      callback_url: `${bridge.url}/callback`,
      callback_token: 'token-alice',
    });
    expect(res.status).toBe(202);
    const [reply] = await callbacksFor('wx-1001');
    expect(reply?.headers.authorization).toBe('Bearer token-alice');
    const body = reply?.json as Record<string, unknown>;
    expect(body).toMatchObject({
      openid: 'oUserAlice',
      message_id: 'wx-1001',
      token: 'token-alice',
      success: true,
    });
    // The text is the fake model's answer (an echo) to the turn that carried 你好.
    expect(String(body.text)).toMatch(/^Echo: /);
    expect(String(body.text).startsWith(modelAnswerFor('你好'))).toBe(true);
    expect(body.result).toBe(body.text);
  }, 180_000);

  it('delivers a message the agent sends on its own through the user’s last callback route', async () => {
    // Alice wrote in the first test; `openclaw message send` goes through the running gateway
    // and the channel's outbound adapter, as the agent's message tool and cron jobs do.
    const send = await run(
      node,
      [
        cli,
        'message',
        'send',
        '--channel',
        'moltage',
        '--target',
        'moltage:oUserAlice',
        '-m',
        '记得喝水',
        '--json',
      ],
      { env: isolatedEnv(home), timeoutMs: 120_000 },
    );
    expect(send.code, send.output).toBe(0);
    const proactive = await waitFor(
      () => bridge.requests.find((r) => (r.json as { text?: string })?.text === '记得喝水'),
      { timeoutMs: 30_000, what: 'the proactive callback' },
    );
    expect(proactive.url).toBe('/callback');
    expect(proactive.json).toEqual({
      openid: 'oUserAlice',
      text: '记得喝水',
      token: 'token-alice',
      success: true,
      result: '记得喝水',
    });
  }, 180_000);

  it('speaks the community plugin protocol', async () => {
    const res = await post({
      task: 'hello from the old bridge',
      callback_url: `${bridge.url}/callback/oUserBob`,
      metadata: { openid: 'oUserBob', msg_type: 'text', msg_id: 'legacy-1' },
    });
    expect(res.status).toBe(202);
    const [reply] = await callbacksFor('legacy-1');
    expect(reply?.url).toBe('/callback/oUserBob');
    const body = reply?.json as Record<string, unknown>;
    expect(body).toMatchObject({ success: true, openid: 'oUserBob' });
    expect(String(body.result).startsWith(modelAnswerFor('hello from the old bridge'))).toBe(true);
  }, 180_000);

  it('keeps one conversation per openid', async () => {
    await post({
      message_id: 'wx-2001',
      openid: 'oUserCarol',
      text: 'my secret word is pineapple',
      msg_type: 'text',
      callback_url: `${bridge.url}/callback`,
    });
    await callbacksFor('wx-2001');
    await post({
      message_id: 'wx-2002',
      openid: 'oUserCarol',
      text: 'what did I say?',
      msg_type: 'text',
      callback_url: `${bridge.url}/callback`,
    });
    await post({
      message_id: 'wx-3001',
      openid: 'oUserDave',
      text: 'what did I say?',
      msg_type: 'text',
      callback_url: `${bridge.url}/callback`,
    });
    await callbacksFor('wx-2002');
    await callbacksFor('wx-3001');

    const asked = sim.sim.llmRequests().filter((r) => JSON.stringify(r.body).includes('what did I say?'));
    expect(asked).toHaveLength(2);
    const withHistory = asked.filter((r) => JSON.stringify(r.body).includes('pineapple'));
    // Carol's second turn carries her first message; Dave's conversation does not.
    expect(withHistory).toHaveLength(1);
    expect(JSON.stringify(withHistory[0]?.body)).toContain('what did I say?');
  }, 240_000);

  it('refuses bad requests before the agent sees them', async () => {
    const before = sim.sim.llmRequests().length;
    const unauthorized = await fetch(`http://127.0.0.1:${webhookPort}/webhook`, {
      method: 'POST',
      headers: { authorization: 'Bearer wrong-token', 'content-type': 'application/json' },
      body: JSON.stringify({
        message_id: 'x',
        openid: 'o',
        text: 't',
        msg_type: 'text',
        callback_url: bridge.url,
      }),
    });
    expect(unauthorized.status).toBe(401);
    const invalid = await post({ message_id: 'x', openid: 'o', text: 't', callback_url: bridge.url });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toEqual({ error: 'bad_request', reason: 'msg_type is required' });
    expect(sim.sim.llmRequests().length).toBe(before);
  });

  it('kept the gateway up with a clear log line when the ngrok tunnel could not start', async () => {
    const log = await readFile(logFile, 'utf8');
    expect(log).toMatch(/ngrok tunnel not started: failed to connect session/);
    expect(log).toContain(`via 127.0.0.1:${ngrokConnectPort}`);
    expect(log).not.toContain('not-a-real-ngrok-token');
    expect(gateway?.proc.exitCode).toBeNull();
  });
});
