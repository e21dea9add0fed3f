import { spawn } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ClientResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export interface ClientTarget {
  port: number;
  knownHosts: string;
  /** Private key file for key logins (BatchMode); omit for password logins. */
  identity?: string;
  /** `accept-new` on first contact, `yes` to require the known host key. */
  strict?: 'yes' | 'accept-new';
}

/** `-o` options shared by ssh, sftp and scp: no user config, no agent, one login method. */
export function clientOptions(t: ClientTarget): string[] {
  const o = [
    '-F',
    '/dev/null',
    '-o',
    `Port=${t.port}`,
    '-o',
    `UserKnownHostsFile=${t.knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    `StrictHostKeyChecking=${t.strict ?? 'accept-new'}`,
    '-o',
    'IdentityAgent=none',
    '-o',
    'ForwardAgent=no',
    '-o',
    'ConnectTimeout=15',
    '-o',
    'LogLevel=ERROR',
    '-o',
    'ServerAliveInterval=0',
  ];
  if (t.identity) {
    o.push('-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', `IdentityFile=${t.identity}`);
    o.push('-o', 'PreferredAuthentications=publickey');
  } else {
    o.push('-o', 'BatchMode=no', '-o', 'PubkeyAuthentication=no', '-o', 'IdentityFile=/dev/null');
    o.push('-o', 'PreferredAuthentications=password', '-o', 'NumberOfPasswordPrompts=1');
  }
  return o;
}

/** Writes the SSH_ASKPASS helper that answers the password prompt from $MOLTAGE_TEST_PASSWORD. */
export async function writeAskpass(dir: string): Promise<string> {
  const path = join(dir, 'askpass.sh');
  await writeFile(path, '#!/bin/sh\nprintf \'%s\\n\' "$MOLTAGE_TEST_PASSWORD"\n');
  await chmod(path, 0o700);
  return path;
}

/**
 * Runs an OpenSSH client to completion. With `password`, the client reads it through
 * SSH_ASKPASS (forced, no terminal needed). Killed after `timeoutMs` (then code is null).
 */
export function runClient(
  cmd: 'ssh' | 'sftp' | 'scp',
  args: string[],
  opts: { askpass?: string; password?: string; input?: string | Buffer; timeoutMs?: number } = {},
): Promise<ClientResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  delete env.SSH_AUTH_SOCK;
  if (opts.password !== undefined) {
    if (!opts.askpass) throw new Error('password logins need the askpass helper');
    env.SSH_ASKPASS = opts.askpass;
    env.SSH_ASKPASS_REQUIRE = 'force';
    env.DISPLAY = env.DISPLAY ?? ':0';
    env.MOLTAGE_TEST_PASSWORD = opts.password;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'], detached: false });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.stdin.on('error', () => {});
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}
