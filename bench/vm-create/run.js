#!/usr/bin/env node
// Benchmark: VM create-to-ready latency (1 and 5 concurrent), idle RSS per VM, bounded
// density run, and create latency with a small vs. a large base rootfs.
// Runs real tiny VMs under QEMU (KVM when the probe says it works, else TCG) with user
// networking. Needs `npx tsc -b` first (imports the packages' dist/).
//
//   node bench/vm-create/run.js [--rounds 5] [--density-max 50] [--skip-density] [--skip-sizes]
//
// Prints a JSON summary and writes it to bench/results/vm-create-<timestamp>.json.
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, runOrchestrator } from '@moltage/orchestrator';
import { startRedis } from '@moltage/testkit';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const flag = (name) => args.includes(`--${name}`);
const rounds = opt('rounds', 5);
const densityMax = opt('density-max', 50);
const imageDir = process.env.MOLTAGE_TEST_IMAGE_DIR ?? '/var/tmp/moltage-test-images';

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : null;
};
const summary = (xs) => ({ n: xs.length, p50_ms: pct(xs, 50), p95_ms: pct(xs, 95), max_ms: Math.max(...xs) });
const log = (...m) => process.stderr.write(`${m.join(' ')}\n`);

async function meminfo() {
  const text = await readFile('/proc/meminfo', 'utf8');
  const kb = (k) => Number(text.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))[1]);
  return { totalKb: kb('MemTotal'), availableKb: kb('MemAvailable') };
}

async function rssKb(pid) {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(text.match(/^VmRSS:\s+(\d+)/m)[1]);
}

async function withOrchestrator(extraEnv, fn) {
  const redis = await startRedis({ appendonly: false });
  const dir = await mkdtemp(join(tmpdir(), 'moltage-bench-'));
  const orch = await runOrchestrator({
    env: {
      PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL: redis.url,
      LOG_LEVEL: 'error',
      VM_DRIVER: 'qemu',
      VM_IMAGE: 'tiny',
      VM_IMAGE_DIR: imageDir,
      VM_NETWORK: 'user',
      VM_DATA_DIR: join(dir, 'vms'),
      SOCKET_DIR: join(dir, 'sock'),
      DEFAULT_MEM_MIB: '128',
      VM_DATA_DISK_MIB: '256',
      VM_READY_TIMEOUT_MS: '60000',
      MAX_VMS: '0',
      VM_SUBNET: '10.0.0.0/16',
      GATEWAY_IP: '10.0.0.1',
      ...extraEnv,
    },
  });
  const api = async (method, path, body) => {
    const res = await fetch(`${orch.url}${path}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  const create = async (user) => {
    const t = performance.now();
    const r = await api('POST', '/api/v1/vms', { user_id: user });
    if (r.status !== 200) throw new Error(`create ${user}: ${r.status} ${JSON.stringify(r.body)}`);
    return performance.now() - t;
  };
  try {
    return await fn({ orch, api, create, dir });
  } finally {
    await orch.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const health = async (api) => (await api('GET', '/health')).body;

const result = { at: new Date().toISOString(), host: { cpus: (await import('node:os')).cpus().length } };
log('building / reusing the tiny image');
const image = await buildImage({ kind: 'tiny', imageDir });
result.image = { hash: image.manifest.hash.slice(0, 12), sizes: image.manifest.sizes };

await withOrchestrator({}, async ({ api, create }) => {
  result.accel = (await health(api)).details.accel;
  log(`single creates (${rounds} rounds, accel ${result.accel})`);
  const single = [];
  for (let i = 0; i < rounds; i++) {
    single.push(await create(`single${i}`));
    await api('DELETE', `/api/v1/vms/single${i}?purge=true`);
  }
  result.create_single = summary(single);

  log('5 concurrent creates');
  const conc = [];
  for (let r = 0; r < Math.max(1, Math.floor(rounds / 2)); r++) {
    const users = [0, 1, 2, 3, 4].map((i) => `conc${r}x${i}`);
    conc.push(...(await Promise.all(users.map((u) => create(u)))));
    await Promise.all(users.map((u) => api('DELETE', `/api/v1/vms/${u}?purge=true`)));
  }
  result.create_concurrent5 = summary(conc);
});

if (!flag('skip-sizes')) {
  // Same guest, base rootfs grown to 2 GiB with 1 GiB of real data in it.
  const bigDir = await mkdtemp(join(tmpdir(), 'moltage-bench-big-'));
  const big = join(bigDir, 'rootfs-big.ext4');
  try {
    log('preparing a 2 GiB base rootfs with 1 GiB of data');
    await copyFile(image.rootfsPath, big);
    execFileSync('truncate', ['-s', '2G', big]);
    execFileSync('resize2fs', ['-f', big], { stdio: 'ignore' });
    const blob = join(bigDir, 'blob');
    execFileSync('dd', ['if=/dev/urandom', `of=${blob}`, 'bs=1M', 'count=1024'], { stdio: 'ignore' });
    execFileSync('debugfs', ['-w', '-R', `write ${blob} /ballast`, big], { stdio: 'ignore' });
    await rm(blob);
    const measure = async (rootfs) =>
      withOrchestrator(rootfs ? { BASE_ROOTFS_PATH: rootfs } : {}, async ({ api, create }) => {
        const xs = [];
        for (let i = 0; i < Math.max(3, Math.floor(rounds / 2)); i++) {
          xs.push(await create(`size${i}`));
          await api('DELETE', `/api/v1/vms/size${i}?purge=true`);
        }
        return summary(xs);
      });
    result.create_by_base_size = {
      small: { rootfs_bytes: image.manifest.sizes.rootfsBytes, ...(await measure(undefined)) },
      large: { rootfs_bytes: 2 * 1024 ** 3, ...(await measure(big)) },
    };
  } finally {
    await rm(bigDir, { recursive: true, force: true });
  }
}

if (!flag('skip-density')) {
  await withOrchestrator({}, async ({ api, create }) => {
    const mem0 = await meminfo();
    log(`density: idle VMs until half the host memory is used (max ${densityMax})`);
    let n = 0;
    const times = [];
    let stopReason = `reached --density-max ${densityMax}`;
    for (; n < densityMax; n++) {
      const m = await meminfo();
      if ((m.totalKb - m.availableKb) / m.totalKb >= 0.5) {
        stopReason = 'host memory half used';
        break;
      }
      try {
        times.push(await create(`dense${n}`));
      } catch (err) {
        stopReason = `create failed: ${err.message}`;
        break;
      }
      if (n % 10 === 9) log(`  ${n + 1} VMs`);
    }
    await new Promise((r) => setTimeout(r, 10_000));
    const vms = (await api('GET', '/api/v1/vms')).body.vms.filter((v) => v.state === 'running');
    const pids = execFileSync('pgrep', ['-f', 'moltage-vm-'])
      .toString()
      .trim()
      .split('\n')
      .map(Number)
      .filter(Boolean);
    const rss = [];
    for (const pid of pids) rss.push(await rssKb(pid).catch(() => 0));
    const mem1 = await meminfo();
    result.density = {
      idle_vms: vms.length,
      stop_reason: stopReason,
      create_while_filling: summary(times),
      idle_rss_mib_per_vm: {
        mean: Math.round(rss.reduce((a, b) => a + b, 0) / rss.length / 1024),
        max: Math.round(Math.max(...rss) / 1024),
      },
      host_mem_used_delta_mib: Math.round((mem0.availableKb - mem1.availableKb) / 1024),
      load_avg: (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).map(Number),
    };
    log('stopping the density VMs');
  });
}

const out = JSON.stringify(result, null, 2);
process.stdout.write(`${out}\n`);
await mkdir(new URL('../results/', import.meta.url), { recursive: true });
await writeFile(
  new URL(`../results/vm-create-${result.at.replace(/[:.]/g, '-')}.json`, import.meta.url),
  `${out}\n`,
);
