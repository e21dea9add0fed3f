import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../errors.js';
import { ensureGatewayKeys, ensureKeyPair } from './key-files.js';

const run = promisify(execFile);
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moltage-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('gateway key files', () => {
  it('generates ed25519 host and upstream keys on first start and reuses them', async () => {
    const hostKeyPath = join(dir, 'etc', 'ssh-gateway', 'host_key');
    const first = await ensureGatewayKeys(hostKeyPath);
    expect(first.host.created).toBe(true);
    expect(first.upstream.path).toBe(join(dir, 'etc', 'ssh-gateway', 'upstream_key'));
    expect(first.host.publicKey).toMatch(/^ssh-ed25519 /);
    expect((await stat(hostKeyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(first.upstream.path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'etc', 'ssh-gateway'))).mode & 0o777).toBe(0o700);

    const again = await ensureGatewayKeys(hostKeyPath);
    expect(again.host.created).toBe(false);
    expect(again.host.privateKey).toBe(first.host.privateKey);
    expect(again.upstream.publicKey).toBe(first.upstream.publicKey);
    expect(again.host.fingerprint).not.toBe(again.upstream.fingerprint);
  });

  it('writes keys OpenSSH reads, and the .pub the orchestrator hands to guests', async () => {
    const { upstream } = await ensureGatewayKeys(join(dir, 'host_key'));
    const derived = await run('ssh-keygen', ['-y', '-f', upstream.path]);
    expect(derived.stdout.trim().split(' ').slice(0, 2)).toEqual(upstream.publicKey.split(' ').slice(0, 2));
    const listed = await run('ssh-keygen', ['-l', '-f', `${upstream.path}.pub`]);
    expect(listed.stdout).toContain(upstream.fingerprint);
    expect((await readFile(`${upstream.path}.pub`, 'utf8')).trim()).toBe(upstream.publicKey);
  });

  it('uses an existing key made by ssh-keygen as it is', async () => {
    const path = join(dir, 'host_key');
    await run('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-C', 'operator', '-f', path]);
    const before = await readFile(path, 'utf8');
    const pair = await ensureKeyPair(path, 'unused');
    expect(pair.created).toBe(false);
    expect(pair.publicKey).toMatch(/^ecdsa-sha2-nistp256 /);
    expect(await readFile(path, 'utf8')).toBe(before);
  });

  it('agrees on one key when several processes start at once', async () => {
    const path = join(dir, 'host_key');
    const pairs = await Promise.all(Array.from({ length: 6 }, () => ensureKeyPair(path, 'race')));
    expect(new Set(pairs.map((p) => p.publicKey)).size).toBe(1);
    expect(pairs.filter((p) => p.created)).toHaveLength(1);
  });

  it('refuses a file that is not a private key and leaves it alone', async () => {
    const path = join(dir, 'host_key');
    await writeFile(path, 'not a key\n');
    const err = await ensureKeyPair(path, 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('SSHGW_KEY_FILE');
    expect((err as Error).message).toContain(path);
    expect(await readFile(path, 'utf8')).toBe('not a key\n');
  });
});
