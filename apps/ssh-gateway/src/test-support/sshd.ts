import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type ChildService, freePort, spawnService } from '@moltage/testkit';

const run = promisify(execFile);

/**
 * A real OpenSSH sshd standing in for a user's VM: its own config, host key and
 * authorized_keys in `dir`, listening on a free 127.0.0.1 port, logging in as root with keys
 * only. `SetEnv MOLTAGE_VM=<name>` marks whose "VM" a session reached.
 */
export interface TestSshd {
  name: string;
  port: number;
  dir: string;
  /** `ssh-ed25519 AAAA…` of its host key. */
  hostPublicKey: string;
  running(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

export async function keygen(
  path: string,
  comment = 'test',
): Promise<{ privatePath: string; publicKey: string }> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
  const { stdout } = await run('cat', [`${path}.pub`]);
  return { privatePath: path, publicKey: stdout.trim() };
}

export async function createSshd(opts: {
  name: string;
  dir: string;
  authorizedKeys: string[];
  port?: number;
}): Promise<TestSshd> {
  // sshd refuses to start without its privilege separation directory (systemd creates it normally).
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  await mkdir(opts.dir, { recursive: true });
  const hostKey = await keygen(join(opts.dir, 'ssh_host_ed25519_key'), `${opts.name}-host`);
  await writeFile(join(opts.dir, 'authorized_keys'), `${opts.authorizedKeys.join('\n')}\n`, { mode: 0o600 });
  const port = opts.port ?? (await freePort());
  const cfg = join(opts.dir, 'sshd_config');
  await writeFile(
    cfg,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey.privatePath}`,
      'PidFile none',
      `AuthorizedKeysFile ${join(opts.dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'AllowUsers root',
      'AllowTcpForwarding yes',
      'AllowAgentForwarding yes',
      'X11Forwarding no',
      'PermitTTY yes',
      'PrintMotd no',
      'PrintLastLog no',
      'Subsystem sftp internal-sftp',
      `SetEnv MOLTAGE_VM=${opts.name}`,
      'AcceptEnv LANG LC_* MOLTAGE_TEST_*',
      'MaxStartups 100',
      'MaxSessions 64',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  let proc: ChildService | null = null;
  let out = '';
  const sshd: TestSshd = {
    name: opts.name,
    port,
    dir: opts.dir,
    hostPublicKey: hostKey.publicKey,
    running: () => proc !== null && proc.proc.exitCode === null && proc.proc.signalCode === null,
    async start() {
      if (sshd.running()) return;
      proc = spawnService('/usr/sbin/sshd', ['-D', '-e', '-f', cfg]);
      await proc.waitForOutput(/Server listening on 127\.0\.0\.1 port/, 10_000);
    },
    async stop() {
      if (!proc) return;
      out += proc.output();
      await proc.stop('SIGTERM', 3000);
      proc = null;
    },
    output: () => out + (proc?.output() ?? ''),
  };
  return sshd;
}
