#!/usr/bin/env node
// `npm run bench`: runs every benchmark with bounded settings (the whole run ≤ 10 minutes on
// 2 cores) and writes bench/REPORT.md: the machine, the date, and for each figure its value and
// its ratio to the baseline measured in the same run.
//
//   node bench/run.js [--only bridge-ack,ssh,vm-create,e2e-tiny,e2e-reply] [--budget-s 590]
//
// Each bench runs as a child process (its own JSON on stdout, its log on stderr, which is passed
// through); a bench that fails or runs out of time is reported as such and the others still run.
// Raw results stay in bench/results/<bench>-<time>.json.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, freemem, loadavg, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const BUDGET_MS = Number(opt('budget-s', 590)) * 1000;
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const ROOT = here('../');
const log = (m) => process.stderr.write(`[bench] ${m}\n`);

/** Bounded settings per bench; `limitS` is its share of the budget (the last one gets the rest). */
const BENCHES = [
  {
    name: 'bridge-ack',
    script: 'bench/bridge-ack/run.js',
    args: ['--rate', '500', '--seconds', '6', '--rounds', '2', '--concurrency', '64', '--users', '200'],
    limitS: 110,
  },
  {
    name: 'ssh',
    script: 'bench/ssh/run.js',
    args: ['--size-mb', '50', '--rounds', '3', '--setup-rounds', '7', '--refuse-rounds', '3'],
    limitS: 120,
  },
  {
    name: 'vm-create',
    script: 'bench/vm-create/run.js',
    args: ['--rounds', '3', '--density-max', '6', '--skip-sizes'],
    limitS: 200,
  },
  {
    // The whole path through Moltage with a guest agent that answers at once: fits any budget.
    name: 'e2e-tiny',
    script: 'bench/e2e-reply/run.js',
    args: ['--image', 'tiny-agent', '--warm', '5', '--cold-timeout-s', '120'],
    limitS: 150,
  },
  {
    name: 'e2e-reply',
    script: 'bench/e2e-reply/run.js',
    // The cold start gets what is left of the budget (see below): under TCG one cold agent boot
    // and first turn alone take 6-10 minutes, so on such machines it may not fit in 10 minutes.
    args: ['--warm', '3'],
    limitS: 260,
    argsFor: (limitS) => ['--warm', '3', '--cold-timeout-s', String(Math.max(60, limitS - 40))],
  },
];

function runBench(b, limitMs) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [b.script, ...b.args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d.toString();
    });
    child.stderr.on('data', (d) => {
      process.stderr.write(d);
      err = (err + d.toString()).slice(-20_000);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      log(`${b.name}: over its ${Math.round(limitMs / 1000)} s share; stopping it`);
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 15_000).unref();
    }, limitMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const seconds = Math.round((Date.now() - started) / 100) / 10;
      const start = out.search(/^\{/m);
      let result = null;
      if (start >= 0) {
        try {
          result = JSON.parse(out.slice(start));
        } catch {
          result = null;
        }
      }
      const error = timedOut
        ? `stopped after ${seconds} s (its share of the time budget)`
        : code !== 0
          ? `exited with ${code ?? signal}${/bench failed: (.*)/.exec(err)?.[1] ? ` — ${/bench failed: (.*)/.exec(err)?.[1]}` : ''}`
          : result === null
            ? 'printed no JSON result'
            : null;
      resolve({ name: b.name, seconds, result, error });
    });
  });
}

function cmdLine(b) {
  return `node ${b.script} ${b.args.join(' ')}`;
}

const fmt = (x, unit = '', d = 1) =>
  x === null || x === undefined || Number.isNaN(x) ? '–' : `${Number(x).toFixed(d)}${unit}`;
const ratio = (a, b, d = 2) => (a == null || b == null || b === 0 ? '–' : (a / b).toFixed(d));

function machine() {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpuModel = /model name\s*:\s*(.*)/.exec(info)?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux
  }
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    // keep os.cpus()
  }
  return {
    nproc,
    cpuModel,
    memGiB: totalmem() / 2 ** 30,
    freeGiB: freemem() / 2 ** 30,
    kernel: release(),
    node: process.version,
    kvm: (() => {
      try {
        readFileSync('/dev/kvm', { flag: 'r' });
        return 'present';
      } catch (err) {
        return err.code === 'ENOENT' ? 'absent' : 'present';
      }
    })(),
  };
}

function report(m, started, loadStart, runs) {
  const by = Object.fromEntries(runs.map((r) => [r.name, r]));
  const lines = [];
  const L = (s = '') => lines.push(s);
  L('# Moltage benchmark report');
  L();
  L(`Generated by \`npm run bench\` (bench/run.js) on ${started.toISOString()}.`);
  L();
  L('## Machine');
  L();
  L('| | |');
  L('|---|---|');
  L(`| CPUs (nproc) | ${m.nproc} |`);
  L(`| CPU model | ${m.cpuModel} |`);
  L(`| memory | ${fmt(m.memGiB, ' GiB')} (free at start ${fmt(m.freeGiB, ' GiB')}) |`);
  L(`| kernel | ${m.kernel} |`);
  L(`| Node.js | ${m.node} |`);
  L(`| /dev/kvm | ${m.kvm} (guests run under QEMU; see vm-create's \`accel\`) |`);
  L(
    `| load average (1 min) | ${loadStart.toFixed(2)} at start, ${loadavg()[0].toFixed(2)} at end — other work on the machine skews wall-clock figures |`,
  );
  L();
  L('## Figures');
  L();
  L('Ratio = value / baseline, both measured in this run (lower is better for latencies, higher for');
  L('throughput). Where no same-run baseline exists the row says what the ratio is taken against.');
  L();
  L('| figure | value | baseline (same run) | ratio | target |');
  L('|---|---|---|---|---|');

  const ack = by['bridge-ack'];
  if (ack?.result) {
    const a = ack.result;
    L(
      `| bridge ack p99 at ${a.bridge.fixed.target_rate_per_s} pushes/s (safe mode, AOF fsync always) | ${fmt(a.bridge.fixed.p99_ms, ' ms', 2)} | bare node:http ${fmt(a.bare.fixed.p99_ms, ' ms', 2)} | ${ratio(a.bridge.fixed.p99_ms, a.bare.fixed.p99_ms, 1)} | ≤ 100 ms |`,
    );
    L(
      `| bridge ack p50 at ${a.bridge.fixed.target_rate_per_s} pushes/s | ${fmt(a.bridge.fixed.p50_ms, ' ms', 2)} | bare node:http ${fmt(a.bare.fixed.p50_ms, ' ms', 2)} | ${ratio(a.bridge.fixed.p50_ms, a.bare.fixed.p50_ms, 1)} | – |`,
    );
    L(
      `| bridge ack throughput (${a.bridge.max.concurrency} in flight) | ${a.bridge.max.throughput_per_s}/s | bare node:http ${a.bare.max.throughput_per_s}/s | ${ratio(a.bridge.max.throughput_per_s, a.bare.max.throughput_per_s)} | ≥ 0.5 |`,
    );
  } else L(`| bridge ack | not measured: ${ack?.error ?? 'not run'} | | | |`);

  const vm = by['vm-create'];
  if (vm?.result) {
    const v = vm.result;
    const s = v.create_single;
    L(
      `| VM create → ready p50 (tiny image, ${v.accel ?? '?'}, n=${s?.n}) | ${fmt(s?.p50_ms / 1000, ' s', 2)} | no same-run baseline; ratio to the 4 s target | ${ratio(s?.p50_ms, 4000)} | ≤ 4 s |`,
    );
    L(
      `| VM create → ready p95 | ${fmt(s?.p95_ms / 1000, ' s', 2)} | single-create p50 ${fmt(s?.p50_ms / 1000, ' s', 2)} | ${ratio(s?.p95_ms, s?.p50_ms)} | – |`,
    );
    const c = v.create_concurrent5;
    if (c)
      L(
        `| VM create → ready p50, 5 at once (n=${c.n}) | ${fmt(c.p50_ms / 1000, ' s', 2)} | single-create p50 | ${ratio(c.p50_ms, s?.p50_ms)} | – |`,
      );
    const d = v.density;
    if (d) {
      const rss = d.idle_rss_mib_per_vm?.mean;
      const fit = rss ? Math.floor((m.memGiB * 1024) / 2 / rss) : null;
      L(
        `| idle density: idle VMs held (${d.stop_reason}) | ${d.idle_vms} VMs, ${rss ?? '–'} MiB RSS each, host memory +${d.host_mem_used_delta_mib} MiB | VMs that fit in half of host memory by RSS: ${fit ?? '–'} | ${ratio(d.idle_vms, fit)} of that reached | ≥ 50 VMs/host |`,
      );
    }
  } else L(`| VM create → ready | not measured: ${vm?.error ?? 'not run'} | | | |`);

  const ssh = by.ssh;
  if (ssh?.result) {
    const t = ssh.result.throughput_mib_s;
    const su = ssh.result.setup_ms;
    L(
      `| SSH download through the gateway (${ssh.result.transfer_mb} MB) | ${fmt(t.down.gateway, ' MiB/s')} | direct ${fmt(t.down.direct, ' MiB/s')} | ${fmt(t.down.ratio, '', 2)} | ≥ 0.8 |`,
    );
    L(
      `| SSH upload through the gateway | ${fmt(t.up.gateway, ' MiB/s')} | direct ${fmt(t.up.direct, ' MiB/s')} | ${fmt(t.up.ratio, '', 2)} | ≥ 0.8 |`,
    );
    L(
      `| SSH \`ssh host true\` p50 | ${fmt(su.gateway_p50, ' ms', 0)} | direct ${fmt(su.direct_p50, ' ms', 0)} | ${ratio(su.gateway_p50, su.direct_p50)} | ≤ +30 ms |`,
    );
  } else L(`| SSH throughput | not measured: ${ssh?.error ?? 'not run'} | | | |`);

  const tiny = by['e2e-tiny'];
  if (tiny?.result && !tiny.result.skipped && tiny.result.cold_ms !== null) {
    const e = tiny.result;
    L(
      `| first reply, cold VM (${e.setup.image}: Moltage's own path, VM boot included) | ${fmt(e.cold_ms / 1000, ' s', 1)} | warm-VM reply p50 ${fmt(e.warm_p50_ms / 1000, ' s', 2)} | ${fmt(e.cold_over_warm, '', 1)} | – |`,
    );
    L(
      `| reply, warm VM, tiny-agent (n=${e.warm_ms.length}) | ${fmt(e.warm_p50_ms / 1000, ' s', 2)} p50 (${e.warm_ms.map((x) => fmt(x / 1000, '', 2)).join(', ')} s) | bridge ack p50 ${ack?.result ? fmt(ack.result.bridge.fixed.p50_ms, ' ms', 2) : '–'} | ${ack?.result ? ratio(e.warm_p50_ms, ack.result.bridge.fixed.p50_ms, 0) : '–'} | – |`,
    );
  } else
    L(
      `| first reply latency, tiny-agent (cold, warm) | not measured: ${tiny?.result?.cold_error ?? tiny?.result?.skipped ?? tiny?.error ?? 'not run'} | | | |`,
    );

  const e2e = by['e2e-reply'];
  if (e2e?.result && !e2e.result.skipped) {
    const e = e2e.result;
    if (e.cold_ms !== null)
      L(
        `| first reply, cold VM (${e.setup.image}) | ${fmt(e.cold_ms / 1000, ' s', 1)} | warm-VM reply p50 ${fmt(e.warm_p50_ms / 1000, ' s', 2)} | ${fmt(e.cold_over_warm, '', 1)} | – |`,
      );
    else
      L(
        `| first reply, cold VM (${e.setup.image}) | **no answer**: ${e.cold_error} | VM ready ${fmt(e.vm_ready_after_first_message_ms / 1000, ' s', 1)} after the first message | – | an answer |`,
      );
    L(
      `| first reply, warm VM (n=${e.warm_ms.length}) | ${fmt(e.warm_p50_ms / 1000, ' s', 2)} p50 (${e.warm_ms.map((x) => fmt(x / 1000, '', 2)).join(', ')} s) | bridge ack p50 ${ack?.result ? fmt(ack.result.bridge.fixed.p50_ms, ' ms', 2) : '–'} | ${ack?.result ? ratio(e.warm_p50_ms, ack.result.bridge.fixed.p50_ms, 0) : '–'} | – |`,
    );
  } else
    L(
      `| first reply latency (cold, warm) | not measured: ${e2e?.result?.skipped ?? e2e?.error ?? 'not run'} | | | |`,
    );
  L();
  L('## Runs');
  L();
  L('| bench | command | took | outcome |');
  L('|---|---|---|---|');
  for (const b of BENCHES) {
    const r = by[b.name];
    if (!r) continue;
    L(`| ${b.name} | \`${cmdLine(b)}\` | ${r.seconds} s | ${r.error ?? 'ok'} |`);
  }
  L();
  L('Raw results: `bench/results/<bench>-<time>.json`. Each bench has a README with what it');
  L('measures and how; the settings above are shortened so that the whole run stays within 10');
  L('minutes, so their spread is wider than the READMEs’ longer runs.');
  L();
  return lines.join('\n');
}

async function main() {
  const started = new Date();
  const t0 = Date.now();
  const loadStart = loadavg()[0];
  const only = opt('only', null)?.split(',');
  log('building (npx tsc -b)');
  try {
    execFileSync('npx', ['tsc', '-b'], { cwd: ROOT, stdio: 'inherit' });
  } catch {
    log('tsc -b failed; running the benches against the existing dist/ output');
  }
  const m = machine();
  const runs = [];
  const selected = BENCHES.filter((b) => !only || only.includes(b.name));
  for (const [i, b] of selected.entries()) {
    const left = BUDGET_MS - (Date.now() - t0);
    const limitMs = i === selected.length - 1 ? left : Math.min(b.limitS * 1000, left);
    if (limitMs < 20_000) {
      runs.push({ name: b.name, seconds: 0, result: null, error: 'skipped: the time budget was used up' });
      continue;
    }
    // The arguments as run (the report shows them).
    if (b.argsFor) b.args = b.argsFor(Math.floor(limitMs / 1000));
    log(`${b.name}: ${cmdLine(b)} (at most ${Math.round(limitMs / 1000)} s)`);
    runs.push(await runBench(b, limitMs));
  }
  const text = report(m, started, loadStart, runs);
  await writeFile(here('./REPORT.md'), text);
  process.stdout.write(text);
  log(`wrote bench/REPORT.md in ${Math.round((Date.now() - t0) / 1000)} s`);
}

main().catch((err) => {
  log(`failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
