#!/usr/bin/env node
// Benchmark: how fast the bridge acknowledges WeChat pushes (safe mode, durable queue on a real
// Redis with the append-only file fsynced on every write), beside a bare node:http server doing
// the same signature check, on the same machine in the same run.
//
//   node bench/bridge-ack/run.js [--rate 500] [--seconds 12] [--concurrency 64] [--users 200] [--rounds 4]
//
// Phases: a fixed rate (open loop: requests are sent on schedule whether or not earlier ones
// were answered), then max rate (closed loop, `concurrency` requests in flight), each `seconds`
// long per server, cut into `rounds` slices that alternate between the two servers so that
// load from elsewhere on the machine affects both alike (the idle one is frozen with SIGSTOP).
// Behind the bridge a stub plays WeChat, the orchestrator and an agent that answers every
// message at once through /callback, so every push is also processed (VM lookup, dispatch,
// typing, the reply, its customer-service send) while the acks are measured; `answers_sent_per_s`
// is how many answers reached the stub WeChat per second of the phase.
// `queue_depth_after` is the bridge's backlog when a phase ends: acks outrunning processing is
// by design (the queue absorbs bursts), the number shows by how much. Other load on the machine
// still skews the figures (see `loadavg_1m_at_end`). Needs `npx tsc -b` first. Prints a JSON
// summary and writes it to bench/results/bridge-ack-<timestamp>.json. Targets: p99 ≤ 100 ms at
// 500 pushes/s; bridge throughput ≥ 50 % of the bare server's. Takes about 2 × seconds + 30 s.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { freePort, startRedis } from '@moltage/testkit';
import { buildXml, sha1Signature, WXBizMsgCrypt } from '@moltage/wechat';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RATE = opt('rate', 500);
const SECONDS = opt('seconds', 12);
const CONCURRENCY = opt('concurrency', 64);
const USERS = opt('users', 200);
const ROUNDS = opt('rounds', 4);
const WARMUP_S = 2;
const SETTLE_MS = 1000;
const HARD_LIMIT_MS = (SECONDS * 4 + WARMUP_S * 2 + 60) * 1000;

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const BRIDGE_MAIN = here('../../apps/bridge/dist/main-cli.js');
const log = (...m) => process.stderr.write(`${m.join(' ')}\n`);

const APPID = `wxbench${randomBytes(4).toString('hex')}`;
const TOKEN = randomBytes(12).toString('hex');
const AES_KEY = randomBytes(32).toString('base64').slice(0, 43);
const crypt = new WXBizMsgCrypt({ token: TOKEN, encodingAesKey: AES_KEY, appId: APPID });

const children = [];
function startChild(script, env, ready) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    const onData = (d) => {
      out += d.toString();
      const m = out.match(ready);
      if (m) {
        child.stdout.off('data', onData);
        child.stderr.off('data', onData);
        child.stdout.resume();
        child.stderr.resume();
        resolve({ child, match: m });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`${script} exited (${code}) before it was ready:\n${out.slice(-2000)}`)),
    );
  });
}

/** The bridge logs at warn level only, so readiness is its /health answering 200. */
async function startBridge(script, env) {
  // BENCH_BRIDGE_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to profile the bridge.
  const nodeArgs = (process.env.BENCH_BRIDGE_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr.on('data', (d) => {
    err += d.toString();
  });
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`bridge exited (${child.exitCode}):\n${err.slice(-2000)}`);
    const ok = await fetch(`http://127.0.0.1:${env.PORT}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`bridge did not answer /health within 20 s:\n${err.slice(-2000)}`);
}

function stopChildren() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** SIGTERM (the bridge stops gracefully), SIGKILL after 5 s. */
async function stopChildrenGracefully() {
  await Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
          c.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          c.kill('SIGCONT');
          c.kill('SIGTERM');
        }),
    ),
  );
}

let msgSeq = BigInt(Date.now()) * 1000n;
/** A fresh safe-mode push (new MsgId, timestamp and nonce), signed as WeChat signs it. */
function makePush(i) {
  const openid = `oBench${String(i % USERS).padStart(22, '0')}`;
  msgSeq += 1n;
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = String(Math.floor(Math.random() * 1e10));
  const xml = buildXml({
    ToUserName: 'gh_bench',
    FromUserName: openid,
    CreateTime: Number(timestamp),
    MsgType: 'text',
    Content: `基准测试消息 ${i}`,
    MsgId: msgSeq.toString(),
  });
  const encrypt = crypt.encrypt(xml);
  const q = new URLSearchParams({
    signature: sha1Signature(TOKEN, timestamp, nonce),
    timestamp,
    nonce,
    openid,
    encrypt_type: 'aes',
    msg_signature: sha1Signature(TOKEN, timestamp, nonce, encrypt),
  });
  return { path: `/wechat?${q}`, body: buildXml({ ToUserName: 'gh_bench', Encrypt: encrypt }) };
}

/** Pushes are encrypted before a phase starts, so the generator spends its time sending. */
function makePushes(n) {
  return Array.from({ length: n }, (_, i) => makePush(i));
}

function post(agent, port, push) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: push.path,
        headers: { 'content-type': 'text/xml' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () =>
          resolve({
            ok: res.statusCode === 200 && body === 'success',
            ms: Number(process.hrtime.bigint() - started) / 1e6,
          }),
        );
      },
    );
    req.on('error', () => resolve({ ok: false, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
    req.end(push.body);
  });
}

const pct = (sorted, p) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null;
function summarize(results, seconds) {
  const ms = results
    .filter((r) => r.ok)
    .map((r) => r.ms)
    .sort((a, b) => a - b);
  const round = (x) => (x === null ? null : Math.round(x * 100) / 100);
  return {
    sent: results.length,
    ok: ms.length,
    failed: results.length - ms.length,
    p50_ms: round(pct(ms, 50)),
    p99_ms: round(pct(ms, 99)),
    max_ms: round(ms.at(-1) ?? null),
    throughput_per_s: Math.round(ms.length / seconds),
  };
}

/** Open loop: `rate` pushes per second for `seconds`, sent on schedule. */
async function fixedRate(port, rate, seconds) {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const pushes = makePushes(Math.round(rate * seconds));
  const pending = [];
  const start = performance.now();
  for (let i = 0; i < pushes.length; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(post(agent, port, pushes[i]));
  }
  const results = await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  return { results, elapsed };
}

/** Closed loop: `concurrency` requests in flight for `seconds`. */
async function maxRate(port, concurrency, seconds) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  // Built as they are sent (every push needs a fresh MsgId): the same cost for both servers.
  const results = [];
  let next = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) results.push(await post(agent, port, makePush(next++)));
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  return { results, elapsed };
}

/** The bridge's queue depth: pushes acked but not processed yet. */
async function backlog(port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    return res.ok ? (await res.json()).queue.depth : null;
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process used so far, from /proc (clock ticks of 10 ms). */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The pid of the redis-server listening on `port`. */
function redisPid(port) {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // redis-server rewrites its title to `redis-server 127.0.0.1:<port>`.
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes('redis-server') && cmd.includes(`:${port}`)) return Number(entry);
    } catch {
      // the process ended meanwhile
    }
  }
  return null;
}

/** Customer-service messages the stub received from the bridge so far (answers delivered). */
async function answersSent(stubUrl) {
  try {
    return (await (await fetch(`${stubUrl}/bench/sent`)).json()).sent;
  } catch {
    return 0;
  }
}

/** A server under test whose processes are frozen (SIGSTOP) while the other one is measured. */
function target(name, port, procs, cpuPids, answered = null) {
  return {
    name,
    port,
    answered,
    /** CPU seconds used so far by the server's processes (server, Redis, stub), by name. */
    cpu: () => Object.fromEntries(Object.entries(cpuPids).map(([k, pid]) => [k, cpuSeconds(pid)])),
    pause: () => {
      for (const p of procs) p.kill('SIGSTOP');
    },
    resume: () => {
      for (const p of procs) p.kill('SIGCONT');
    },
  };
}

/**
 * Both servers, each phase cut into ROUNDS slices that alternate between them (ABBA…), so load
 * from elsewhere on the machine hits both alike. The idle server is frozen meanwhile, so the
 * bridge's backlog processing never runs during the bare server's slices.
 */
async function measureBoth(bridge, bare) {
  const out = { bridge: {}, bare: {} };
  const phases = [
    ['fixed', (port, secs) => fixedRate(port, RATE, secs)],
    ['max', (port, secs) => maxRate(port, CONCURRENCY, secs)],
  ];
  for (const t of [bridge, bare]) {
    t.resume();
    log(`[${t.name}] warm-up ${WARMUP_S}s`);
    await fixedRate(t.port, Math.min(RATE, 200), WARMUP_S);
    t.pause();
  }
  const slice = Math.max(1, SECONDS / ROUNDS);
  for (const [phase, run] of phases) {
    const acc = {
      bridge: { results: [], elapsed: 0, cpu: {}, answered: 0 },
      bare: { results: [], elapsed: 0, cpu: {}, answered: 0 },
    };
    let depth = null;
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? [bridge, bare] : [bare, bridge];
      for (const t of order) {
        t.resume();
        // Timers that fell due while frozen fire now: let them pass before measuring.
        await new Promise((res) => setTimeout(res, SETTLE_MS));
        log(`[${t.name}] ${phase} ${r + 1}/${ROUNDS} (${slice}s)`);
        const cpuBefore = t.cpu();
        const answeredBefore = t.answered ? await t.answered() : 0;
        const genBefore = process.cpuUsage();
        const { results, elapsed } = await run(t.port, slice);
        const genUsed = process.cpuUsage(genBefore);
        const a = acc[t.name];
        if (t.answered) a.answered += (await t.answered()) - answeredBefore;
        for (const [k, v] of Object.entries(t.cpu())) a.cpu[k] = (a.cpu[k] ?? 0) + v - (cpuBefore[k] ?? 0);
        a.cpu.load_generator = (a.cpu.load_generator ?? 0) + (genUsed.user + genUsed.system) / 1e6;
        for (const res of results) a.results.push(res);
        a.elapsed += elapsed;
        if (t === bridge) depth = await backlog(t.port);
        t.pause();
      }
    }
    for (const name of ['bridge', 'bare']) {
      const a = acc[name];
      out[name][phase] = {
        ...summarize(a.results, a.elapsed),
        // Share of one core each process used while this server was measured.
        cpu_cores: Object.fromEntries(
          Object.entries(a.cpu).map(([k, v]) => [k, Math.round((v / a.elapsed) * 100) / 100]),
        ),
        ...(phase === 'fixed' ? { target_rate_per_s: RATE } : { concurrency: CONCURRENCY }),
        ...(name === 'bridge'
          ? { answers_sent_per_s: Math.round(a.answered / a.elapsed), queue_depth_after: depth }
          : {}),
      };
    }
  }
  bridge.resume();
  bare.resume();
  return out;
}

async function main() {
  const hardLimit = setTimeout(() => {
    log(`bench exceeded ${HARD_LIMIT_MS} ms; stopping`);
    stopChildren();
    process.exit(2);
  }, HARD_LIMIT_MS);
  hardLimit.unref();

  const redis = await startRedis();
  try {
    if (process.env.BENCH_REDIS_FSYNC) {
      execFileSync('redis-cli', [
        '-p',
        String(redis.port),
        'CONFIG',
        'SET',
        'appendfsync',
        process.env.BENCH_REDIS_FSYNC,
      ]);
    }
    const bare = await startChild(
      here('./bare-server.js'),
      { WECHAT_TOKEN: TOKEN },
      /bare listening on http:\/\/127\.0\.0\.1:(\d+)/,
    );
    const stub = await startChild(here('./stub.js'), {}, /stub listening on (\S+)/);
    const stubUrl = stub.match[1];
    const port = await freePort();
    const bridgeEnv = {
      PORT: String(port),
      HOST: '127.0.0.1',
      WECHAT_APPID: APPID,
      WECHAT_APPSECRET: 'bench-secret',
      WECHAT_TOKEN: TOKEN,
      WECHAT_ENCODING_AES_KEY: AES_KEY,
      WECHAT_API_BASE: stubUrl,
      ORCHESTRATOR_URL: stubUrl,
      BRIDGE_BASE_URL: `http://127.0.0.1:${port}`,
      REDIS_URL: redis.url,
      LOG_LEVEL: 'warn',
      BRIDGE_SHUTDOWN_GRACE_MS: '1000',
      ...(process.env.BENCH_BRIDGE_ENV ? JSON.parse(process.env.BENCH_BRIDGE_ENV) : {}),
    };
    const bridgeProc = await startBridge(BRIDGE_MAIN, bridgeEnv);
    const results = await measureBoth(
      target(
        'bridge',
        port,
        [bridgeProc, stub.child],
        { bridge: bridgeProc.pid, redis: redisPid(redis.port), stub: stub.child.pid },
        () => answersSent(stubUrl),
      ),
      target('bare', Number(bare.match[1]), [bare.child], { bare: bare.child.pid }),
    );
    const bridgeResult = results.bridge;
    const bareResult = results.bare;
    const ratio = bridgeResult.max.throughput_per_s / bareResult.max.throughput_per_s;
    const summary = {
      bench: 'bridge-ack',
      at: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        node: process.version,
        loadavg_1m_at_end: Math.round(loadavg()[0] * 100) / 100,
      },
      setup: {
        mode: 'safe (AES)',
        redis: 'redis-server, appendonly yes, appendfsync always',
        users: USERS,
        processing:
          'every push is processed behind the ack: a stub orchestrator, an agent that answers each message at once through /callback, and WeChat receiving the answers (answers_sent_per_s)',
      },
      bridge: bridgeResult,
      bare: bareResult,
      throughput_ratio: Math.round(ratio * 100) / 100,
      targets: {
        p99_at_rate_ms: {
          target: 100,
          actual: bridgeResult.fixed.p99_ms,
          met:
            bridgeResult.fixed.p99_ms !== null &&
            bridgeResult.fixed.p99_ms <= 100 &&
            bridgeResult.fixed.failed === 0,
        },
        throughput_ratio: { target: 0.5, actual: Math.round(ratio * 100) / 100, met: ratio >= 0.5 },
      },
    };
    const out = JSON.stringify(summary, null, 2);
    process.stdout.write(`${out}\n`);
    const dir = here('../results/');
    await mkdir(dir, { recursive: true });
    await writeFile(`${dir}bridge-ack-${summary.at.replace(/[:.]/g, '-')}.json`, `${out}\n`);
  } finally {
    await stopChildrenGracefully();
    await redis.stop();
  }
}

main().catch((err) => {
  log(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
  stopChildren();
  process.exit(1);
});
