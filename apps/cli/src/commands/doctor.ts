import { execFile } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about it, when status is not ok. */
  fix?: string;
}

export interface DoctorOptions {
  env: NodeJS.ProcessEnv;
  nodeVersion?: string;
  /** Ports the stack listens on by default. */
  ports?: { name: string; port: number }[];
}

async function commandVersion(cmd: string, args: string[]): Promise<string | null> {
  try {
    const { stdout, stderr } = await run(cmd, args, { timeout: 5000 });
    const first = `${stdout}${stderr}`.trim().split('\n')[0];
    return first ?? '';
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') return null;
    // Some tools (ssh -V, sshd -V) print their version on stderr and exit non-zero.
    const text = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n')[0];
    return text || null;
  }
}

function findCommand(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return null;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
  });
}

function redisPing(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new Error(`REDIS_URL is not a valid URL`));
      return;
    }
    const sock = createConnection({ host: u.hostname, port: Number(u.port || 6379) });
    sock.setTimeout(1500);
    sock.on('connect', () => {
      if (u.password) sock.write(`AUTH ${decodeURIComponent(u.password)}\r\n`);
      sock.write('PING\r\n');
    });
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('+PONG') || buf.startsWith('-')) {
        sock.destroy();
        if (buf.includes('+PONG')) resolve('PONG');
        else reject(new Error(buf.trim()));
      }
    });
    sock.on('timeout', () => {
      sock.destroy();
      reject(new Error('no answer within 1.5 s'));
    });
    sock.on('error', (err) => reject(err));
  });
}

export async function runChecks(opts: DoctorOptions): Promise<CheckResult[]> {
  const env = opts.env;
  const results: CheckResult[] = [];
  const add = (r: CheckResult) => results.push(r);

  // Node on the host.
  const nodeVersion = opts.nodeVersion ?? process.versions.node;
  const [major = 0, minor = 0] = nodeVersion.split('.').map(Number);
  if (major > 20 || (major === 20 && minor >= 18)) {
    add({ name: 'Node.js', status: 'ok', detail: `v${nodeVersion}` });
  } else {
    add({
      name: 'Node.js',
      status: 'fail',
      detail: `v${nodeVersion}`,
      fix: 'install Node.js 20.18 or newer',
    });
  }

  // Redis: either the configured one answers, or redis-server is installed for `moltage up`.
  if (env.REDIS_URL) {
    try {
      await redisPing(env.REDIS_URL);
      add({ name: 'Redis', status: 'ok', detail: `REDIS_URL answers PING` });
    } catch (err) {
      add({
        name: 'Redis',
        status: 'fail',
        detail: `REDIS_URL does not answer: ${(err as Error).message}`,
        fix: 'start Redis or correct REDIS_URL',
      });
    }
  } else {
    const v = await commandVersion('redis-server', ['--version']);
    add(
      v
        ? { name: 'Redis', status: 'ok', detail: `${v.replace(/ sha=.*$/, '')} (moltage up starts its own)` }
        : {
            name: 'Redis',
            status: 'fail',
            detail: 'redis-server not found and REDIS_URL unset',
            fix: 'apt-get install redis-server, or set REDIS_URL',
          },
    );
  }

  // Hypervisors.
  const qemuBin = env.QEMU_BIN ?? 'qemu-system-x86_64';
  const qemu = await commandVersion(qemuBin, ['--version']);
  add(
    qemu
      ? { name: 'QEMU', status: 'ok', detail: qemu }
      : {
          name: 'QEMU',
          status: 'warn',
          detail: `${qemuBin} not found`,
          fix: 'apt-get install qemu-system-x86 qemu-utils (needed unless Firecracker is used)',
        },
  );
  const fcBin = env.FIRECRACKER_BIN ?? '/usr/local/bin/firecracker';
  add(
    existsSync(fcBin)
      ? { name: 'Firecracker', status: 'ok', detail: fcBin }
      : {
          name: 'Firecracker',
          status: 'warn',
          detail: `not found at ${fcBin}`,
          fix: 'optional: install the firecracker binary (needs a working KVM); otherwise the qemu driver is used',
        },
  );

  // /dev/kvm: present and openable. Whether a guest really runs on it is probed by the qemu
  // driver with a short boot (nested hypervisors often expose a /dev/kvm that hangs guests).
  if (!existsSync('/dev/kvm')) {
    add({
      name: '/dev/kvm',
      status: 'warn',
      detail: 'absent: VMs run under software emulation (TCG), several times slower',
      fix: 'enable virtualization in the BIOS / cloud instance type for hardware acceleration',
    });
  } else {
    try {
      closeSync(openSync('/dev/kvm', 'r+'));
      const probe = readKvmProbe(env);
      if (probe === null) {
        add({
          name: '/dev/kvm',
          status: 'ok',
          detail: 'present and writable; the orchestrator probes once whether guests really run on it',
        });
      } else if (probe) {
        add({ name: '/dev/kvm', status: 'ok', detail: 'probe boot succeeded: VMs use KVM' });
      } else {
        add({
          name: '/dev/kvm',
          status: 'warn',
          detail: 'present, but a probe boot hung: VMs use software emulation (TCG)',
          fix: 'on a nested host, ask for a KVM-capable instance; TCG works but is slower',
        });
      }
    } catch (err) {
      add({
        name: '/dev/kvm',
        status: 'warn',
        detail: `present but not usable: ${(err as Error).message}`,
        fix: 'run as root or add the user to the kvm group',
      });
    }
  }

  // Guest images.
  const imageDir = env.VM_IMAGE_DIR ?? '/var/lib/moltage/images';
  const images = existsSync(imageDir)
    ? readdirSync(imageDir).filter((d) => existsSync(join(imageDir, d, 'manifest.json')))
    : [];
  const wanted = env.VM_IMAGE ?? 'agent';
  if (images.includes(wanted)) {
    add({
      name: 'Guest image',
      status: 'ok',
      detail: `${wanted} in ${imageDir} (all: ${images.join(', ')})`,
    });
  } else {
    add({
      name: 'Guest image',
      status: 'warn',
      detail: images.length
        ? `${wanted} not built in ${imageDir} (have: ${images.join(', ')})`
        : `none built in ${imageDir}`,
      fix: `moltage image build${wanted === 'tiny' ? ' --tiny' : ''} (moltage up builds it on first run)`,
    });
  }

  // Tools the stack and the image builder use.
  const tools: [string, string][] = [
    ['ssh', 'openssh-client'],
    ['sshd', 'openssh-server'],
    ['qemu-img', 'qemu-utils'],
    ['mkfs.ext4', 'e2fsprogs'],
    ['debootstrap', 'debootstrap'],
    ['cpio', 'cpio'],
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
  ];
  const missing = tools.filter(([cmd]) => findCommand(cmd) === null);
  add(
    missing.length === 0
      ? { name: 'Host tools', status: 'ok', detail: tools.map(([c]) => c).join(', ') }
      : {
          name: 'Host tools',
          status: 'warn',
          detail: `missing: ${missing.map(([c]) => c).join(', ')}`,
          fix: `apt-get install ${[...new Set(missing.map(([, p]) => p))].join(' ')}`,
        },
  );

  // Ports.
  const ports = opts.ports ?? [
    { name: 'bridge', port: Number(env.PORT ?? 3000) },
    { name: 'orchestrator', port: 8080 },
    { name: 'ssh-gateway', port: 2222 },
    { name: 'simulator', port: Number(env.SIM_PORT ?? 3100) },
  ];
  const busy: string[] = [];
  for (const p of ports) if (!(await portFree(p.port))) busy.push(`${p.port} (${p.name})`);
  add(
    busy.length === 0
      ? { name: 'Ports', status: 'ok', detail: `free: ${ports.map((p) => p.port).join(', ')}` }
      : {
          name: 'Ports',
          status: 'warn',
          detail: `in use: ${busy.join(', ')}`,
          fix: 'stop what listens there (ss -ltnp), or a running moltage stack already uses them',
        },
  );
  return results;
}

/** The qemu driver caches its KVM probe result; null when no probe has run yet. */
function readKvmProbe(env: NodeJS.ProcessEnv): boolean | null {
  const file = join(env.VM_DATA_DIR ?? '/var/lib/firecracker/vms', '.kvm-probe.json');
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { usable?: boolean };
    return typeof parsed.usable === 'boolean' ? parsed.usable : null;
  } catch {
    return null;
  }
}

const MARK: Record<CheckStatus, string> = { ok: '✓', warn: '!', fail: '✗' };

export function formatReport(results: CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  const lines = results.map((r) => {
    const head = `${MARK[r.status]} ${r.name.padEnd(width)}  ${r.detail}`;
    return r.fix ? `${head}\n  ${' '.repeat(width)}  → ${r.fix}` : head;
  });
  const fails = results.filter((r) => r.status === 'fail').length;
  const warns = results.filter((r) => r.status === 'warn').length;
  lines.push('');
  lines.push(
    fails
      ? `${fails} problem(s) must be fixed before Moltage can run; ${warns} warning(s).`
      : warns
        ? `Ready to run, with ${warns} warning(s).`
        : 'All checks passed.',
  );
  return lines.join('\n');
}
