#!/usr/bin/env node
// Benchmark: the SSH gateway against a direct connection to the same sshd, in the same run.
//  - throughput of a large transfer (default 100 MB) up (client → VM) and down (VM → client),
//    through the gateway and directly, and their ratio;
//  - connection setup latency (`ssh host true`) and what the gateway adds to it;
//  - time to refuse a wrong password for a known user vs. an unknown user (should match).
// The "VM" is a real sshd started as root on a free 127.0.0.1 port (as in the gateway tests).
// Needs `npx tsc -b` first (imports the packages' dist/) and root (for sshd).
//
//   node bench/ssh/run.js [--size-mb 100] [--rounds 3] [--setup-rounds 15] [--refuse-rounds 9]
//
// Prints a JSON summary and writes it to bench/results/ssh-<timestamp>.json. Every transfer is
// bounded (60 s); the whole run takes well under two minutes on a 2-core machine.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes, scryptSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSshGateway } from '@moltage/ssh-gateway';
import { freePort, startRedis } from '@moltage/testkit';
import { Redis } from 'ioredis';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const sizeMb = opt('size-mb', 100);
const rounds = opt('rounds', 3);
const setupRounds = opt('setup-rounds', 15);
const refuseRounds = opt('refuse-rounds', 9);
const TRANSFER_TIMEOUT_MS = 60_000;
const OPENID = 'oBench_0123456789abcdefghijk';

const log = (...m) => process.stderr.write(`${m.join(' ')}\n`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function sh(cmd, argv, { env, timeoutMs = TRANSFER_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, argv, { env: env ?? process.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr: err, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
  });
}

async function main() {
  if (process.getuid?.() !== 0)
    throw new Error('run as root: the benchmark starts sshd as the upstream "VM"');
  const loadStart = loadavg().map((x) => round(x, 2));
  const dir = await mkdtemp(join(tmpdir(), 'moltage-ssh-bench-'));
  const redisServer = await startRedis({ appendonly: false });
  const redis = new Redis(redisServer.url);
  const cleanup = [];
  try {
    // A minimal orchestrator: the VM is already running, so only `touch` is called.
    const orch = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    await new Promise((r) => orch.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => orch.close(r)));

    const gw = await runSshGateway({
      env: {
        LISTEN_ADDR: '127.0.0.1:0',
        METRICS_ADDR: 'off',
        REDIS_URL: redisServer.url,
        ORCHESTRATOR_URL: `http://127.0.0.1:${orch.address().port}`,
        HOST_KEY_PATH: join(dir, 'gateway', 'host_key'),
        VM_SSH_USER: 'root',
        VM_SSH_PASSWORD_FALLBACK: 'false',
        AUTH_FAIL_LIMIT_PER_IP: '100000',
        AUTH_FAIL_LIMIT_PER_USER: '100000',
        LOG_LEVEL: 'error',
      },
    });
    cleanup.unshift(() => gw.close());

    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host')]);
    const clientPub = (await readFile(join(dir, 'id.pub'), 'utf8')).trim();
    const upstreamPub = (await readFile(join(dir, 'gateway', 'upstream_key.pub'), 'utf8')).trim();
    await writeFile(join(dir, 'authorized_keys'), `${clientPub}\n${upstreamPub}\n`);
    const sshdPort = await freePort();
    await writeFile(
      join(dir, 'sshd_config'),
      [
        `Port ${sshdPort}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host')}`,
        'PidFile none',
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'MaxStartups 100',
        'Subsystem sftp internal-sftp',
        '',
      ].join('\n'),
    );
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    cleanup.push(async () => {
      if (sshd.exitCode === null) {
        const done = new Promise((r) => sshd.once('exit', r));
        sshd.kill('SIGTERM');
        await done;
      }
    });
    await new Promise((resolve, reject) => {
      let out = '';
      sshd.stderr.on('data', (d) => {
        out += d;
        if (out.includes('Server listening')) resolve();
      });
      sshd.once('exit', () => reject(new Error(`sshd exited: ${out}`)));
    });

    const now = new Date().toISOString();
    await redis.set(
      `vm:${OPENID}`,
      JSON.stringify({
        user_id: OPENID,
        state: 'running',
        ip: '127.0.0.1',
        ssh: { host: '127.0.0.1', port: sshdPort },
        created_at: now,
      }),
    );
    const [type, key] = clientPub.split(' ');
    await redis.set(
      `user:${OPENID}`,
      JSON.stringify({ openid: OPENID, ssh: { publicKeys: [{ type, key }] } }),
    );

    const base = (port, user) => [
      '-F',
      '/dev/null',
      '-p',
      String(port),
      '-o',
      `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
      '-o',
      'StrictHostKeyChecking=accept-new',
      '-o',
      'BatchMode=yes',
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      `IdentityFile=${join(dir, 'id')}`,
      '-o',
      'IdentityAgent=none',
      '-o',
      'LogLevel=ERROR',
      '-o',
      'Compression=no',
      `${user}@127.0.0.1`,
    ];
    const routes = { direct: base(sshdPort, 'root'), gateway: base(gw.port, OPENID) };
    const bytes = sizeMb * 1024 * 1024;

    // Warm up (host keys learned, upstream host key pinned, JIT warm).
    for (const r of Object.values(routes)) {
      const w = await sh('ssh', [...r, 'true']);
      if (w.code !== 0) throw new Error(`warm-up ssh failed: ${w.stderr}`);
    }

    log(`throughput: ${sizeMb} MB, ${rounds} rounds per route and direction`);
    const tput = { up: { direct: [], gateway: [] }, down: { direct: [], gateway: [] } };
    const upCmd = (r) => [
      '-c',
      `head -c ${bytes} /dev/zero | ssh ${r.map((a) => `'${a}'`).join(' ')} 'cat > /dev/null'`,
    ];
    // The gateway runs in this process: its CPU time per MiB relayed is a figure that, unlike
    // wall-clock throughput, other load on the machine barely moves.
    const cpuMsPerMib = { down: [], up: [] };
    const cpuMs = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    for (let i = 0; i < rounds; i++) {
      for (const [name, r] of Object.entries(routes)) {
        let c0 = cpuMs();
        const down = await sh('ssh', [...r, `head -c ${bytes} /dev/zero`]);
        if (down.code !== 0) throw new Error(`download via ${name} failed: ${down.stderr || down.signal}`);
        tput.down[name].push(bytes / 1024 / 1024 / (down.ms / 1000));
        if (name === 'gateway') cpuMsPerMib.down.push((cpuMs() - c0) / sizeMb);
        c0 = cpuMs();
        const up = await sh('sh', upCmd(r));
        if (up.code !== 0) throw new Error(`upload via ${name} failed: ${up.stderr || up.signal}`);
        tput.up[name].push(bytes / 1024 / 1024 / (up.ms / 1000));
        if (name === 'gateway') cpuMsPerMib.up.push((cpuMs() - c0) / sizeMb);
      }
    }

    log(`connection setup: ${setupRounds} rounds of \`ssh host true\` per route`);
    const setup = { direct: [], gateway: [] };
    for (let i = 0; i < setupRounds; i++) {
      for (const [name, r] of Object.entries(routes)) {
        const t = await sh('ssh', [...r, 'true'], { timeoutMs: 15_000 });
        if (t.code !== 0) throw new Error(`ssh via ${name} failed: ${t.stderr}`);
        setup[name].push(t.ms);
      }
    }

    log(`password refusals: ${refuseRounds} rounds, known user with a wrong password vs. unknown user`);
    const askpass = join(dir, 'askpass.sh');
    await writeFile(askpass, '#!/bin/sh\necho wrong-password\n');
    await chmod(askpass, 0o700);
    const salt = randomBytes(16);
    const hash = scryptSync('the-right-one', salt, 32, { N: 16384, r: 8, p: 1, maxmem: 64 << 20 });
    await redis.set(
      `sshotp:${OPENID}`,
      JSON.stringify({
        alg: 'scrypt',
        N: 16384,
        r: 8,
        p: 1,
        keyLen: 32,
        salt: salt.toString('base64'),
        hash: hash.toString('base64'),
        issuedAt: now,
      }),
    );
    const pwEnv = { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' };
    const pwArgs = (user) => [
      '-F',
      '/dev/null',
      '-p',
      String(gw.port),
      '-o',
      `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
      '-o',
      'PubkeyAuthentication=no',
      '-o',
      'PreferredAuthentications=password',
      '-o',
      'NumberOfPasswordPrompts=1',
      '-o',
      'LogLevel=ERROR',
      `${user}@127.0.0.1`,
      'true',
    ];
    const refuse = { known_user: [], unknown_user: [] };
    for (let i = 0; i < refuseRounds; i++) {
      for (const [name, user] of [
        ['known_user', OPENID],
        ['unknown_user', 'oNobody_0123456789abcdefghi'],
      ]) {
        const t = await sh('ssh', pwArgs(user), { env: pwEnv, timeoutMs: 15_000 });
        if (t.code !== 255) throw new Error(`wrong password was not refused for ${name}`);
        refuse[name].push(t.ms);
      }
    }

    const mbps = (xs) => round(median(xs));
    const result = {
      benchmark: 'ssh-gateway',
      at: new Date().toISOString(),
      host: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
      transfer_mb: sizeMb,
      rounds,
      throughput_mib_s: {
        down: {
          direct: mbps(tput.down.direct),
          gateway: mbps(tput.down.gateway),
          ratio: round(median(tput.down.gateway) / median(tput.down.direct), 3),
        },
        up: {
          direct: mbps(tput.up.direct),
          gateway: mbps(tput.up.gateway),
          ratio: round(median(tput.up.gateway) / median(tput.up.direct), 3),
        },
      },
      gateway_cpu_ms_per_mib: {
        down: round(median(cpuMsPerMib.down), 2),
        up: round(median(cpuMsPerMib.up), 2),
      },
      load_average: { start: loadStart, end: loadavg().map((x) => round(x, 2)) },
      setup_ms: {
        rounds: setupRounds,
        direct_p50: round(median(setup.direct)),
        gateway_p50: round(median(setup.gateway)),
        added_p50: round(median(setup.gateway) - median(setup.direct)),
      },
      refusal_ms: {
        rounds: refuseRounds,
        known_user_wrong_password_p50: round(median(refuse.known_user)),
        unknown_user_p50: round(median(refuse.unknown_user)),
      },
      targets: { throughput_ratio_min: 0.8, added_setup_ms_max: 30 },
    };
    result.meets_targets = {
      throughput: result.throughput_mib_s.down.ratio >= 0.8 && result.throughput_mib_s.up.ratio >= 0.8,
      setup: result.setup_ms.added_p50 <= 30,
    };
    const text = JSON.stringify(result, null, 2);
    process.stdout.write(`${text}\n`);
    const resultsDir = new URL('../results/', import.meta.url);
    await mkdir(resultsDir, { recursive: true });
    await writeFile(new URL(`ssh-${result.at.replace(/[:.]/g, '-')}.json`, resultsDir), `${text}\n`);
    const digest = createHash('sha256').update(text).digest('hex').slice(0, 8);
    log(`written bench/results/ssh-${result.at.replace(/[:.]/g, '-')}.json (${digest})`);
  } finally {
    for (const f of cleanup) await f().catch((e) => log('cleanup:', e.message));
    redis.disconnect();
    await redisServer.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  log(`ssh bench failed: ${err.message}`);
  process.exit(1);
});
