import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type RunningBridge, runBridge } from '@moltage/bridge';
import { type InboxEntry, SimulatorClient, type StartedSimulator, startSimulator } from '@moltage/simulator';
import { freePort, type RedisServer, startRedis } from '@moltage/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPlugin } from '../../../packages/openclaw-plugin/src/test-support/openclaw-runtime.js';
import { type BuiltImage, buildImage } from './images/build-image.js';
import { type RunningOrchestrator, runOrchestrator } from './orchestrator.js';
import { type Sandbox, sandbox, sshRun, TEST_IMAGE_DIR } from './test/helpers.js';

const exec = promisify(execFile);

const ORCH_TOKEN = 'orchestrator-token-0123456789';
const LLM_KEY = 'sk-moltage-e2e';
const LLM_MODEL = 'fake-model';
/** QEMU's software emulation (TCG) on a shared 2-core host: OpenClaw needs minutes to start. */
const BOOT_BUDGET_MS = 25 * 60_000;
/** The bridge's messages for a failure (apps/bridge/src/domain/texts.ts): never an answer. */
const FAILURE_PREFIX = '抱歉';

const log = (msg: string) => process.stderr.write(`[agent-e2e] ${msg}\n`);

/**
 * The first reply end to end, with the full agent image under QEMU (user networking): a
 * simulated WeChat user writes 你好 → the bridge → the orchestrator boots the user's VM → the
 * Moltage plugin in the real OpenClaw → the fake LLM → the plugin calls the bridge back →
 * customer-service send → the simulator's inbox shows the fake LLM's answer. Then the same VM
 * is checked from the outside: the plugin answers /health, the gateway's key logs in as `user`,
 * OpenClaw runs as that user.
 */
describe('agent image end to end (slow: QEMU TCG)', () => {
  let image: BuiltImage;
  let box: Sandbox;
  let redis: RedisServer;
  let sim: StartedSimulator;
  let client: SimulatorClient;
  let orch: RunningOrchestrator | undefined;
  let bridge: RunningBridge | undefined;
  let openid: string;

  beforeAll(async () => {
    const t0 = Date.now();
    await buildPlugin();
    image = await buildImage({
      kind: 'agent',
      imageDir: TEST_IMAGE_DIR,
      onProgress: (p) => log(`image: ${p.message}`),
    });
    log(`agent image ready after ${Math.round((Date.now() - t0) / 1000)} s (cached: ${image.cached})`);

    box = await sandbox();
    redis = await startRedis();
    const bridgePort = await freePort();
    sim = await startSimulator({
      llmApiKey: LLM_KEY,
      llmModels: [LLM_MODEL],
      account: { bridgeUrl: `http://127.0.0.1:${bridgePort}/wechat` },
    });
    client = new SimulatorClient(sim.url);

    orch = await runOrchestrator({
      env: {
        PORT: '0',
        HOST: '127.0.0.1',
        REDIS_URL: redis.url,
        LOG_LEVEL: 'warn',
        ORCHESTRATOR_TOKEN: ORCH_TOKEN,
        VM_DRIVER: 'qemu',
        VM_IMAGE: 'agent',
        VM_IMAGE_DIR: TEST_IMAGE_DIR,
        VM_NETWORK: 'user',
        VM_DATA_DIR: box.dataDir,
        SOCKET_DIR: box.socketDir,
        GATEWAY_SSH_PUBKEY_PATH: box.pubKeyPath,
        VM_READY_TIMEOUT_MS: String(BOOT_BUDGET_MS),
        VM_IDLE_TIMEOUT_S: '0',
        // A loopback URL: the orchestrator rewrites it to the address the guest sees the host at.
        LLM_BASE_URL: `${sim.url}/v1`,
        LLM_API_KEY: LLM_KEY,
        LLM_MODEL,
      },
    });

    const account = sim.account;
    bridge = await runBridge({
      handleSignals: false,
      env: {
        PORT: String(bridgePort),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        REDIS_URL: redis.url,
        WECHAT_APPID: account.appId,
        WECHAT_APPSECRET: account.appSecret,
        WECHAT_TOKEN: account.token,
        ...(account.encodingAesKey ? { WECHAT_ENCODING_AES_KEY: account.encodingAesKey } : {}),
        WECHAT_API_BASE: sim.url,
        // A loopback URL, as `moltage up` gives it: agents call the bridge back at
        // BRIDGE_BASE_URL, which the orchestrator rewrites to the address the guest sees the
        // host at under QEMU user networking (GATEWAY_IP, 10.0.1.1).
        BRIDGE_BASE_URL: `http://127.0.0.1:${bridgePort}`,
        ORCHESTRATOR_URL: orch.url,
        ORCHESTRATOR_TOKEN: ORCH_TOKEN,
        VM_READY_TIMEOUT_MS: String(BOOT_BUDGET_MS),
        AGENT_REPLY_TIMEOUT_MS: String(BOOT_BUDGET_MS),
      },
    });
    ({
      user: { openid },
    } = await client.createUser({ follow: true }));
  }, 30 * 60_000);

  afterAll(async () => {
    await bridge?.close().catch((err) => log(`bridge close: ${err}`));
    await orch?.close().catch((err) => log(`orchestrator close: ${err}`));
    await sim?.close();
    await redis?.stop();
    await box?.cleanup();
  }, 120_000);

  async function vmRecord() {
    const res = await fetch(`${orch!.url}/api/v1/vms/${openid}`, {
      headers: { authorization: `Bearer ${ORCH_TOKEN}` },
    });
    expect(res.status).toBe(200);
    return (await res.json()) as {
      state: string;
      ssh: { host: string; port: number };
      agent_url: string;
      mem_mib: number;
    };
  }

  it(
    'answers a WeChat user’s 你好 with what the fake LLM said to OpenClaw in the user’s VM',
    async () => {
      const sent = Date.now();
      const push = await client.sendText(openid, '你好');
      expect(push.status).toBe('ok');

      let answer: InboxEntry | undefined;
      while (!answer) {
        const inbox = await client.inbox(openid);
        const failure = inbox.find((e) => e.text?.startsWith(FAILURE_PREFIX));
        // A failure notice is final: the bridge does not answer that message again.
        expect(failure?.text, 'the bridge told the user something went wrong').toBeUndefined();
        answer = inbox.find((e) => e.text?.startsWith('Echo:'));
        if (!answer) {
          expect(Date.now() - sent, 'no answer in the inbox yet').toBeLessThan(BOOT_BUDGET_MS);
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
      const metrics = await (await fetch(`${orch!.url}/metrics`)).text();
      const bootS = Number(metrics.match(/^moltage_vm_start_seconds_sum(?:\{[^}]*\})? (\S+)$/m)?.[1]);
      log(
        `first reply ${Math.round((Date.now() - sent) / 1000)} s after the push, of which VM boot → agent ready ${Math.round(bootS)} s`,
      );

      // The answer is the fake LLM's, for the turn that carried the user's words.
      const request = (await client.llmRequests()).find((r) => r.lastUserText?.includes('你好'));
      expect(request?.status).toBe(200);
      expect(request?.model).toBe(LLM_MODEL);
      expect(answer.text).toBe('Echo: 你好');
      expect(request?.answerPreview).toBe(answer.text);
      expect(answer.via).toBe('custom_send');
    },
    BOOT_BUDGET_MS + 60_000,
  );

  it('runs OpenClaw as the VM user, with the plugin answering /health and SSH for the gateway key', async () => {
    const rec = await vmRecord();
    expect(rec.state).toBe('running');
    expect(rec.mem_mib).toBe(image.manifest.memMib);

    const health = await fetch(rec.agent_url.replace(/\/webhook$/, '/health'));
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', plugin: 'webhook-server', channel: 'moltage' });
    const unauthenticated = await fetch(rec.agent_url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message_id: 'x', openid, text: 'hi', msg_type: 'text' }),
    });
    expect(unauthenticated.status).toBe(401);

    const out = await sshRun(
      rec.ssh.port,
      box.keyPath,
      'id -un; ps -eo user=,rss=,args= | grep "[o]penclaw"',
    );
    const [me, ...procs] = out.trim().split('\n');
    expect(me).toBe('user');
    expect(procs.length).toBeGreaterThan(0);
    for (const p of procs) expect(p.split(/\s+/)[0]).toBe('user');
    const rssMib = procs.reduce((sum, p) => sum + Number(p.split(/\s+/)[1]), 0) / 1024;
    log(`OpenClaw processes in the guest after answering: ${Math.round(rssMib)} MiB RSS in all`);

    // Key login only, never root.
    await expect(
      exec('ssh', [
        '-i',
        box.keyPath,
        '-p',
        String(rec.ssh.port),
        '-o',
        'BatchMode=yes',
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'ConnectTimeout=20',
        'root@127.0.0.1',
        'true',
      ]),
    ).rejects.toMatchObject({ stderr: expect.stringContaining('Permission denied') });
  }, 120_000);
});
