import { createHash } from 'node:crypto';

/** Key types `sshkey` accepts. */
export const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

export interface SshPublicKey {
  type: SshKeyType;
  /** The base64 key blob exactly as in authorized_keys. */
  key: string;
  comment: string;
  /** `SHA256:<base64 without padding>`, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  bits: number;
}

export type SshKeyProblem = 'format' | 'type' | 'blob' | 'weak';

export class SshKeyParseError extends Error {
  constructor(
    readonly problem: SshKeyProblem,
    message: string,
  ) {
    super(message);
    this.name = 'SshKeyParseError';
  }
}

const EC_POINT_BYTES: Record<string, { curve: string; bytes: number; bits: number }> = {
  'ecdsa-sha2-nistp256': { curve: 'nistp256', bytes: 65, bits: 256 },
  'ecdsa-sha2-nistp384': { curve: 'nistp384', bytes: 97, bits: 384 },
  'ecdsa-sha2-nistp521': { curve: 'nistp521', bytes: 133, bits: 521 },
};

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_LINE_CHARS = 16_384;
const MIN_RSA_BITS = 2048;

/** Reads SSH wire-format strings (uint32 BE length ‖ bytes) from a blob. */
class WireReader {
  #pos = 0;
  constructor(private readonly buf: Buffer) {}

  string(): Buffer {
    if (this.#pos + 4 > this.buf.length) throw new SshKeyParseError('blob', 'key blob is truncated');
    const len = this.buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    if (len > this.buf.length - this.#pos) throw new SshKeyParseError('blob', 'key blob is truncated');
    const out = this.buf.subarray(this.#pos, this.#pos + len);
    this.#pos += len;
    return out;
  }

  done(): boolean {
    return this.#pos === this.buf.length;
  }
}

/** Bit length of an SSH mpint (big-endian two's complement, positive). */
function mpintBits(m: Buffer): number {
  let i = 0;
  while (i < m.length && m[i] === 0) i++;
  if (i === m.length) return 0;
  const first = m[i] ?? 0;
  return (m.length - i - 1) * 8 + (32 - Math.clz32(first));
}

/**
 * Parses and validates one OpenSSH public key line (`<type> <base64> [comment]`): the type is
 * one of {@link SSH_KEY_TYPES}, the blob decodes, names the same type, and holds a well-formed
 * key (Ed25519: 32 bytes; RSA: ≥ 2048-bit modulus; ECDSA: uncompressed point on the named curve).
 */
export function parseSshPublicKey(line: string): SshPublicKey {
  const text = line.trim();
  if (text.length === 0 || text.length > MAX_LINE_CHARS) {
    throw new SshKeyParseError('format', 'expected one OpenSSH public key line');
  }
  const [type = '', blob = '', ...commentParts] = text.split(/\s+/);
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) {
    throw new SshKeyParseError('type', `unsupported key type ${JSON.stringify(type.slice(0, 40))}`);
  }
  if (!BASE64_RE.test(blob) || blob.length % 4 !== 0) {
    throw new SshKeyParseError('format', 'key data is not base64');
  }
  const raw = Buffer.from(blob, 'base64');
  const reader = new WireReader(raw);
  const inner = reader.string().toString('latin1');
  if (inner !== type)
    throw new SshKeyParseError('blob', `key data is a ${inner.slice(0, 40)} key, not ${type}`);

  let bits: number;
  if (type === 'ssh-ed25519') {
    const pk = reader.string();
    if (pk.length !== 32) throw new SshKeyParseError('blob', 'Ed25519 key must be 32 bytes');
    bits = 256;
  } else if (type === 'ssh-rsa') {
    const e = reader.string();
    const n = reader.string();
    const eBits = mpintBits(e);
    if (eBits < 2 || ((e[e.length - 1] ?? 0) & 1) === 0)
      throw new SshKeyParseError('blob', 'bad RSA exponent');
    if ((n[0] ?? 0) & 0x80) throw new SshKeyParseError('blob', 'RSA modulus is negative');
    bits = mpintBits(n);
    if (bits < MIN_RSA_BITS)
      throw new SshKeyParseError('weak', `RSA keys need at least ${MIN_RSA_BITS} bits`);
    if (bits > 16_384) throw new SshKeyParseError('blob', 'RSA modulus is too large');
  } else {
    const spec = EC_POINT_BYTES[type];
    if (!spec) throw new SshKeyParseError('type', 'unsupported ECDSA curve');
    const curve = reader.string().toString('latin1');
    if (curve !== spec.curve)
      throw new SshKeyParseError('blob', `curve ${curve.slice(0, 20)} does not match ${type}`);
    const q = reader.string();
    if (q.length !== spec.bytes || q[0] !== 0x04) {
      throw new SshKeyParseError('blob', 'ECDSA key must be an uncompressed point of the named curve');
    }
    bits = spec.bits;
  }
  if (!reader.done()) throw new SshKeyParseError('blob', 'unexpected data after the key');

  const comment = commentParts
    .join(' ')
    .replace(/[^\x20-\x7e\u00a0-\uffff]/g, '')
    .slice(0, 100);
  const fingerprint = `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
  return { type: type as SshKeyType, key: blob, comment, fingerprint, bits };
}
