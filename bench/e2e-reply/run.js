#!/usr/bin/env node
// Benchmark: end-to-end first reply latency, as a WeChat user feels it. A simulated user sends a
// text; the clock runs from the push until the agent's answer lands in the user's inbox at the
// simulator (customer-service send). Cold = the user's first message (the orchestrator boots the
// VM, the guest's agent starts, asks the fake LLM, calls the bridge back); warm = further messages
// to the running VM. Whole stack on this machine: real Redis, the WeChat simulator with its fake
// LLM (in this process), the orchestrator (QEMU, user networking) and the bridge as child
// processes (`node bin/moltage.js orchestrator|bridge`).
//
//   node bench/e2e-reply/run.js [--image agent|tiny-agent] [--warm 3] [--cold-timeout-s 300]
//                               [--image-dir /var/tmp/moltage-test-images]
//
// `--image agent` (default): OpenClaw in the guest, as users get it; needs a built agent image in
// the image directory (`moltage image build`), else it prints {"skipped": "..."} and exits 0 (the
// agent image is used as it is: nothing is built). `--image tiny-agent`: the test image whose
// guest agent is a small shell script answering through the same webhook/callback contract — the
// same path through Moltage (bridge, orchestrator, VM boot, guest agent, callback, send) without
// OpenClaw's own start-up and turn; built here if missing (about a minute, cached after).
// Prints a JSON summary and writes bench/results/e2e-reply-<timestamp>.json.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SimulatorClient, startSimulator } from '@moltage/simulator';
import { freePort, startRedis } from '@moltage/testkit';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const WARM = Number(opt('warm', 3));
const COLD_TIMEOUT_MS = Number(opt('cold-timeout-s', 300)) * 1000;
const WARM_TIMEOUT_MS = 120_000;
const IMAGE_DIR = opt('image-dir', process.env.VM_IMAGE_DIR ?? '/var/tmp/moltage-test-images');
const IMAGE = opt('image', 'agent');
if (IMAGE !== 'agent' && IMAGE !== 'tiny-agent') {
  process.stderr.write(`--image must be agent or tiny-agent, not ${JSON.stringify(IMAGE)}\n`);
  process.exit(2);
}
const COLD_START_NOTICE = '正在为你启动专属环境，请稍候……';
/** The bridge's failure messages (apps/bridge/src/domain/texts.ts): a reply that is one of them is not an answer. */
const FAILURE_TEXTS = [
  '抱歉，你的专属环境暂时无法启动，请稍后再试。',
  '环境启动超时，请稍后再发一次消息。',
  '抱歉，AI 助手暂时无法连接，请稍后再试。',
];

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const MOLTAGE = here('../../bin/moltage.js');
const log = (...m) => process.stderr.write(`[e2e-reply] ${m.join(' ')}\n`);
const round = (x, d = 0) => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);
const median = (xs) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const children = [];
function startChild(name, env, readyUrl, timeoutMs) {
  const child = spawn(process.execPath, [MOLTAGE, name], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  const keep = (d) => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = async () => {
      if (child.exitCode !== null) {
        reject(new Error(`${name} exited (${child.exitCode}):\n${out.slice(-2000)}`));
        return;
      }
      try {
        const res = await fetch(readyUrl, { signal: AbortSignal.timeout(1000) });
        if (res.ok) {
          resolve({ child, output: () => out });
          return;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline)
        reject(new Error(`${name} not ready after ${timeoutMs} ms:\n${out.slice(-2000)}`));
      else setTimeout(poll, 200);
    };
    poll();
  });
}

async function stopChildren() {
  await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => {
            c.kill('SIGKILL');
          }, 20_000);
          c.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
}

/**
 * Kills what is left of this run's VMs: QEMU processes whose command line names our data
 * directory (an orchestrator stopped in the middle of a create may leave one behind).
 */
function killLeftovers(dataDir) {
  let killed = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(dataDir) && Number(pid) !== process.pid) {
        process.kill(Number(pid), 'SIGKILL');
        killed++;
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return killed;
}

/** Sends `text` and waits for the next message that is not the cold-start notice. */
async function measureReply(client, openid, text, timeoutMs) {
  const before = (await client.inbox(openid)).length;
  const t0 = performance.now();
  await client.sendText(openid, text, { wait: false });
  const deadline = Date.now() + timeoutMs;
  let notice = null;
  for (let want = before + 1; ; ) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no reply to "${text}" within ${timeoutMs} ms`);
    const entries = await client
      .waitForInbox(openid, want, { timeoutMs: Math.min(left, 30_000) })
      .catch((err) => (err.code === 'SIM_WAIT_TIMEOUT' ? null : Promise.reject(err)));
    if (!entries) continue;
    const fresh = entries.slice(before);
    for (const e of fresh) {
      const body = e.text ?? e.preview ?? '';
      if (body === COLD_START_NOTICE) {
        notice ??= performance.now() - t0;
        continue;
      }
      if (
        FAILURE_TEXTS.some((t) => body.startsWith(t.slice(0, 8))) ||
        body.includes('超时') ||
        body.startsWith('抱歉')
      ) {
        throw new Error(
          `the user got a failure message instead of an answer after ${Math.round(performance.now() - t0)} ms: ${body}`,
        );
      }
      return { ms: performance.now() - t0, notice_ms: notice, reply: body.slice(0, 80) };
    }
    want = entries.length + 1;
  }
}

async function main() {
  const manifestPath = join(IMAGE_DIR, IMAGE, 'manifest.json');
  if (IMAGE === 'tiny-agent') {
    const { buildImage } = await import('@moltage/orchestrator');
    const built = await buildImage({ kind: 'tiny-agent', imageDir: IMAGE_DIR });
    log(`tiny-agent image ${built.cached ? 'cached' : 'built'} in ${IMAGE_DIR}`);
  }
  if (!existsSync(manifestPath)) {
    const out = JSON.stringify({ bench: 'e2e-reply', skipped: `no agent image at ${manifestPath}` });
    process.stdout.write(`${out}\n`);
    return;
  }
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const hardLimit = setTimeout(
    () => {
      log('bench exceeded its time limit; stopping');
      for (const c of children) c.kill('SIGKILL');
      process.exit(2);
    },
    COLD_TIMEOUT_MS + WARM * WARM_TIMEOUT_MS + 180_000,
  );
  hardLimit.unref();

  const dataDir = await mkdtemp(join(tmpdir(), 'moltage-e2e-bench-'));
  const redis = await startRedis();
  const sim = await startSimulator({ account: { mode: 'safe' } });
  try {
    const account = sim.account;
    const orchPort = await freePort();
    const bridgePort = await freePort();
    const orchToken = randomBytes(16).toString('hex');
    const bridgeUrl = `http://127.0.0.1:${bridgePort}`;
    log(
      `${IMAGE} image ${manifest.hash.slice(0, 12)} (${manifest.kernelVersion}); starting the orchestrator`,
    );
    const orch = await startChild(
      'orchestrator',
      {
        PORT: String(orchPort),
        HOST: '127.0.0.1',
        REDIS_URL: redis.url,
        ORCHESTRATOR_TOKEN: orchToken,
        VM_DRIVER: 'qemu',
        VM_NETWORK: 'user',
        VM_IMAGE: IMAGE,
        VM_IMAGE_DIR: IMAGE_DIR,
        VM_DATA_DIR: join(dataDir, 'vms'),
        SOCKET_DIR: join(dataDir, 'sockets'),
        VM_READY_TIMEOUT_MS: String(COLD_TIMEOUT_MS),
        CALLBACK_PORT: String(bridgePort),
        LLM_BASE_URL: `${sim.url}/v1`,
        LLM_API_KEY: 'fake-llm-key',
        LLM_MODEL: 'fake-model',
        LOG_LEVEL: 'info',
      },
      `http://127.0.0.1:${orchPort}/health`,
      120_000,
    );
    log('starting the bridge');
    const bridge = await startChild(
      'bridge',
      {
        PORT: String(bridgePort),
        HOST: '127.0.0.1',
        WECHAT_APPID: account.appId,
        WECHAT_APPSECRET: account.appSecret,
        WECHAT_TOKEN: account.token,
        WECHAT_ENCODING_AES_KEY: account.encodingAesKey,
        WECHAT_API_BASE: sim.url,
        BRIDGE_BASE_URL: bridgeUrl,
        REDIS_URL: redis.url,
        ORCHESTRATOR_URL: `http://127.0.0.1:${orchPort}`,
        ORCHESTRATOR_TOKEN: orchToken,
        VM_READY_TIMEOUT_MS: String(COLD_TIMEOUT_MS),
        // OpenClaw's first turn after a boot takes minutes under TCG.
        AGENT_REPLY_TIMEOUT_MS: String(COLD_TIMEOUT_MS),
        LOG_LEVEL: 'warn',
      },
      `${bridgeUrl}/health`,
      60_000,
    );
    sim.sim.updateAccount({ bridgeUrl: `${bridgeUrl}/wechat` });
    const client = new SimulatorClient(sim.url);
    const { user } = await client.createUser({ follow: true });
    await client.waitForInbox(user.openid, 1, { timeoutMs: 15_000 });

    log(`cold: first message (VM boot, up to ${COLD_TIMEOUT_MS / 1000} s)`);
    const coldStarted = performance.now();
    let cold = null;
    let coldError = null;
    let vmReadyMs = null;
    try {
      cold = await measureReply(client, user.openid, '你好，请介绍一下你自己', COLD_TIMEOUT_MS);
      log(`cold reply after ${round(cold.ms)} ms`);
    } catch (err) {
      coldError = err instanceof Error ? err.message : String(err);
      log(`cold: ${coldError}`);
      log(`orchestrator log (tail):\n${orch.output().slice(-3000)}`);
      log(`bridge log (tail):\n${bridge.output().slice(-3000)}`);
    }
    // However the first message went, when did the VM itself become ready?
    const orchApi = `http://127.0.0.1:${orchPort}/api/v1/vms/${encodeURIComponent(user.openid)}`;
    const readyDeadline = coldStarted + COLD_TIMEOUT_MS;
    let lastVm = null;
    while (performance.now() < readyDeadline) {
      const res = await fetch(orchApi, { headers: { authorization: `Bearer ${orchToken}` } }).catch(
        () => null,
      );
      const vm = res?.ok ? await res.json() : null;
      if (vm) lastVm = { state: vm.state, error: vm.error ?? null };
      if (vm?.state === 'running' && vm.agent_url) {
        vmReadyMs = performance.now() - coldStarted;
        break;
      }
      if (vm?.state === 'error') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (cold) vmReadyMs = Math.min(vmReadyMs ?? cold.ms, cold.ms);
    log(
      `VM ready (as the orchestrator reports it) ${vmReadyMs === null ? 'never' : `after ≤ ${round(vmReadyMs)} ms`}`,
    );
    if (vmReadyMs === null) {
      throw new Error(
        `the VM was not ready within ${COLD_TIMEOUT_MS / 1000} s (last record: ${JSON.stringify(lastVm)}); cold: ${coldError ?? 'ok'}`,
      );
    }
    const warm = [];
    const warmReplies = [];
    for (let i = 0; i < WARM; i++) {
      const w = await measureReply(client, user.openid, `第 ${i + 1} 个问题：现在几点？`, WARM_TIMEOUT_MS);
      log(`warm reply ${i + 1} after ${round(w.ms)} ms`);
      warm.push(w.ms);
      warmReplies.push(w.reply);
    }
    const llmCalls = (await client.llmRequests()).length;
    const summary = {
      bench: 'e2e-reply',
      at: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        node: process.version,
        loadavg_1m_at_end: round(loadavg()[0], 2),
      },
      setup: {
        image:
          IMAGE === 'agent'
            ? `agent ${manifest.hash.slice(0, 12)} (OpenClaw in the guest, fake LLM on the host)`
            : `tiny-agent ${manifest.hash.slice(0, 12)} (shell test agent in the guest, no LLM)`,
        image_kind: IMAGE,
        driver: 'qemu, user networking',
        mode: 'safe (AES)',
      },
      cold_ms: cold ? round(cold.ms) : null,
      cold_error: coldError,
      cold_start_notice_ms: cold ? round(cold.notice_ms) : null,
      vm_ready_after_first_message_ms: round(vmReadyMs),
      warm_ms: warm.map((x) => round(x)),
      warm_p50_ms: round(median(warm)),
      cold_over_warm: cold ? round(cold.ms / median(warm), 1) : null,
      llm_requests: llmCalls,
      first_reply_preview: cold?.reply ?? null,
      warm_reply_preview: warmReplies[0] ?? null,
    };
    const out = JSON.stringify(summary, null, 2);
    process.stdout.write(`${out}\n`);
    const dir = here('../results/');
    await mkdir(dir, { recursive: true });
    await writeFile(`${dir}e2e-reply-${summary.at.replace(/[:.]/g, '-')}.json`, `${out}\n`);
  } finally {
    await stopChildren();
    const left = killLeftovers(dataDir);
    if (left > 0) log(`killed ${left} VM process(es) the orchestrator left behind on shutdown`);
    await sim.close();
    await redis.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch(async (err) => {
  log(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
});
