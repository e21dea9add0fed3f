import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findProcesses, waitForExit } from '../adapters/process.js';
import { bannerAnswers } from '../adapters/readiness.js';
import { type BuiltImage, buildImage } from '../images/build-image.js';

const exec = promisify(execFile);

/** Where tests cache the tiny image (built once per machine, reused while inputs match). */
export const TEST_IMAGE_DIR = process.env.MOLTAGE_TEST_IMAGE_DIR ?? '/var/tmp/moltage-test-images';

export function tinyImage(): Promise<BuiltImage> {
  return buildImage({ kind: 'tiny', imageDir: TEST_IMAGE_DIR });
}

/** The tiny image plus its test agent (webhook on 8789), cached beside it. */
export function tinyAgentImage(): Promise<BuiltImage> {
  return buildImage({ kind: 'tiny-agent', imageDir: TEST_IMAGE_DIR });
}

export interface Sandbox {
  dir: string;
  dataDir: string;
  socketDir: string;
  keyPath: string;
  pubKeyPath: string;
  /** Kills every VM process started under this sandbox and removes its files. */
  cleanup(): Promise<void>;
}

export async function sandbox(): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'moltage-orch-'));
  const keyPath = join(dir, 'id_ed25519');
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'moltage-test', '-f', keyPath]);
  const socketDir = join(dir, 'sock');
  return {
    dir,
    dataDir: join(dir, 'vms'),
    socketDir,
    keyPath,
    pubKeyPath: `${keyPath}.pub`,
    async cleanup() {
      await killVms(socketDir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The environment of an orchestrator under test: loopback, QEMU with user networking, the tiny
 * image from the tests' cache, 128 MiB guests, everything under `box`. `extra` adds or overrides.
 */
export function tinyOrchestratorEnv(
  box: Sandbox,
  redisUrl: string,
  token: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    PORT: '0',
    HOST: '127.0.0.1',
    REDIS_URL: redisUrl,
    LOG_LEVEL: 'warn',
    ORCHESTRATOR_TOKEN: token,
    VM_DRIVER: 'qemu',
    VM_IMAGE: 'tiny',
    VM_IMAGE_DIR: TEST_IMAGE_DIR,
    VM_NETWORK: 'user',
    VM_DATA_DIR: box.dataDir,
    SOCKET_DIR: box.socketDir,
    DEFAULT_MEM_MIB: '128',
    GATEWAY_SSH_PUBKEY_PATH: box.pubKeyPath,
    ...extra,
  };
}

/** One call to an orchestrator's API: the status and the JSON body (null when empty); `token` null sends none. */
export async function callApi(
  baseUrl: string,
  token: string | null,
  method: string,
  path: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever fields the answer has.
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** VM processes whose command line lives under `socketDir`. */
export async function vmProcesses(socketDir: string) {
  return (await findProcesses(`${socketDir}/vm-`)).filter((p) => p.args[0]?.includes('qemu'));
}

export async function killVms(socketDir: string): Promise<void> {
  for (const p of await vmProcesses(socketDir)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
    await waitForExit(p.pid, 5000);
  }
}

export function sshBanner(port: number): Promise<boolean> {
  return bannerAnswers('127.0.0.1', port, 'SSH-');
}

/** Runs a command in the guest as `user` through the forwarded port with real OpenSSH. */
export async function sshRun(port: number, keyPath: string, command: string): Promise<string> {
  const { stdout } = await exec(
    'ssh',
    [
      '-i',
      keyPath,
      '-p',
      String(port),
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=ERROR',
      '-o',
      'ConnectTimeout=10',
      'user@127.0.0.1',
      command,
    ],
    { timeout: 30_000 },
  );
  return stdout;
}
