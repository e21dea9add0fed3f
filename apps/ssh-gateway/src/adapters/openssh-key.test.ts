import { randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { generateEd25519Key } from './openssh-key.js';

const { utils } = ssh2;

describe('generateEd25519Key', () => {
  it('always writes keys that parse, including public keys that start with a zero byte', () => {
    // ~8 of 2000 public keys start with 0x00, the case ssh2's own generator gets wrong.
    for (let i = 0; i < 2000; i++) {
      const pair = generateEd25519Key('gateway');
      const priv = utils.parseKey(pair.privateKey);
      const pub = utils.parseKey(pair.publicKey);
      if (priv instanceof Error || Array.isArray(priv)) throw new Error(`private key ${i} does not parse`);
      if (pub instanceof Error || Array.isArray(pub)) throw new Error(`public key ${i} does not parse`);
      expect(priv.getPublicSSH().equals(pub.getPublicSSH())).toBe(true);
    }
  });

  it('signs with the private key so that the public key verifies', () => {
    const pair = generateEd25519Key('c');
    const priv = utils.parseKey(pair.privateKey);
    const pub = utils.parseKey(pair.publicKey);
    if (priv instanceof Error || Array.isArray(priv) || pub instanceof Error || Array.isArray(pub)) {
      throw new Error('keys do not parse');
    }
    const data = randomBytes(100);
    expect(pub.verify(data, priv.sign(data))).toBe(true);
    expect(priv.comment).toBe('c');
    expect(pair.publicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} c$/);
  });
});
