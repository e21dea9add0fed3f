import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseSshPublicKey, SshKeyParseError } from './ssh-key.js';

function sshString(b: Buffer | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b, 'latin1') : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

function mpint(b: Buffer): Buffer {
  let v = b;
  while (v.length > 1 && v[0] === 0) v = v.subarray(1);
  if ((v[0] ?? 0) & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return sshString(v);
}

function ed25519Line(comment = 'me@laptop'): { line: string; blob: Buffer } {
  const { publicKey } = generateKeyPairSync('ed25519');
  const x = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(x)]);
  return { line: `ssh-ed25519 ${blob.toString('base64')} ${comment}`, blob };
}

function rsaLine(bits: number): string {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const jwk = publicKey.export({ format: 'jwk' });
  const blob = Buffer.concat([
    sshString('ssh-rsa'),
    mpint(Buffer.from(jwk.e as string, 'base64url')),
    mpint(Buffer.from(jwk.n as string, 'base64url')),
  ]);
  return `ssh-rsa ${blob.toString('base64')}`;
}

function ecdsaLine(): string {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const q = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x as string, 'base64url'),
    Buffer.from(jwk.y as string, 'base64url'),
  ]);
  const blob = Buffer.concat([sshString('ecdsa-sha2-nistp256'), sshString('nistp256'), sshString(q)]);
  return `ecdsa-sha2-nistp256 ${blob.toString('base64')} work`;
}

function problemOf(line: string): string {
  try {
    parseSshPublicKey(line);
    return 'ok';
  } catch (err) {
    if (err instanceof SshKeyParseError) return err.problem;
    throw err;
  }
}

describe('parseSshPublicKey', () => {
  it('accepts an Ed25519 key and computes the ssh-keygen fingerprint', () => {
    const { line, blob } = ed25519Line();
    const key = parseSshPublicKey(line);
    expect(key.type).toBe('ssh-ed25519');
    expect(key.comment).toBe('me@laptop');
    expect(key.bits).toBe(256);
    expect(key.fingerprint).toBe(
      `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`,
    );
  });

  it('accepts RSA ≥ 2048 bits and ECDSA keys', () => {
    expect(parseSshPublicKey(rsaLine(2048)).bits).toBe(2048);
    expect(parseSshPublicKey(ecdsaLine()).type).toBe('ecdsa-sha2-nistp256');
  });

  it('refuses weak RSA keys', () => {
    expect(problemOf(rsaLine(1024))).toBe('weak');
  });

  it('refuses a blob whose inner type differs from the declared one', () => {
    const { line } = ed25519Line();
    expect(problemOf(line.replace(/^ssh-ed25519/, 'ssh-rsa'))).toBe('blob');
  });

  it('refuses unknown types, bad base64, truncated blobs and trailing data', () => {
    const { line, blob } = ed25519Line();
    expect(problemOf(`ssh-dss ${blob.toString('base64')}`)).toBe('type');
    expect(problemOf('ssh-ed25519 not*base64')).toBe('format');
    expect(problemOf(`ssh-ed25519 ${blob.subarray(0, blob.length - 3).toString('base64')}`)).toBe('blob');
    expect(
      problemOf(`ssh-ed25519 ${Buffer.concat([blob, Buffer.from([1, 2, 3, 4])]).toString('base64')}`),
    ).toBe('blob');
    expect(problemOf('')).toBe('format');
    expect(problemOf(line.split(' ')[0] as string)).toBe('format');
  });

  it('strips control characters from the comment', () => {
    const { line } = ed25519Line('evil\u0007\u001b[31mname');
    expect(parseSshPublicKey(line).comment).toBe('evil[31mname');
  });
});
