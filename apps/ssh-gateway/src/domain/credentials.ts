import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import ssh2 from 'ssh2';
import { z } from 'zod';

// ssh2 is CommonJS: Node's ESM loader does not see all of its named exports.
const { utils } = ssh2;

/**
 * Login names are openids (WeChat: 28 characters of base64url) or admin-chosen user ids; the
 * orchestrator accepts the same set. Anything else is refused like an unknown user.
 */
export const LOGIN_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidLoginName(name: string): boolean {
  return LOGIN_NAME_PATTERN.test(name);
}

/**
 * The scrypt parameters the bridge hashes one-time passwords with (apps/bridge `SCRYPT_PARAMS`).
 * Logins without a stored password are hashed with them too, so they cost the same time.
 */
export const DEFAULT_SCRYPT = { N: 16384, r: 8, p: 1, keyLen: 32 } as const;

/** Longest password the gateway hashes; longer ones are refused (after the same hash work). */
export const MAX_PASSWORD_BYTES = 1024;

/** A parsed `sshotp:<openid>` value (the bridge's StoredSshPassword). */
export interface StoredOtp {
  N: number;
  r: number;
  p: number;
  keyLen: number;
  salt: Buffer;
  hash: Buffer;
}

const isPowerOfTwo = (n: number) => n >= 2 && (n & (n - 1)) === 0;

const storedOtpSchema = z.object({
  alg: z.literal('scrypt'),
  // Bounded so that a damaged record cannot make one login burn seconds of CPU or GBs of memory.
  N: z
    .number()
    .int()
    .min(1024)
    .max(1 << 20)
    .refine(isPowerOfTwo),
  r: z.number().int().min(1).max(32),
  p: z.number().int().min(1).max(16),
  keyLen: z.number().int().min(16).max(64),
  salt: z.string().min(1).max(1024),
  hash: z.string().min(1).max(1024),
});

/** Parses the JSON at `sshotp:<openid>`; null when absent or not a record this gateway can verify. */
export function parseStoredOtp(raw: string | null): StoredOtp | null {
  if (raw === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  const parsed = storedOtpSchema.safeParse(json);
  if (!parsed.success) return null;
  const { N, r, p, keyLen } = parsed.data;
  const salt = Buffer.from(parsed.data.salt, 'base64');
  const hash = Buffer.from(parsed.data.hash, 'base64');
  if (hash.length !== keyLen || salt.length === 0) return null;
  if (128 * N * r * p > MAX_SCRYPT_MEM_BYTES) return null;
  return { N, r, p, keyLen, salt, hash };
}

const MAX_SCRYPT_MEM_BYTES = 256 * 1024 * 1024;

function scryptAsync(password: Buffer, salt: Buffer, p: StoredOtp): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(
      password,
      salt,
      p.keyLen,
      { N: p.N, r: p.r, p: p.p, maxmem: MAX_SCRYPT_MEM_BYTES + 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

/** A record no password matches: its hash is random. Used to spend the same work on unknown users. */
function dummyOtp(): StoredOtp {
  return { ...DEFAULT_SCRYPT, salt: randomBytes(16), hash: randomBytes(DEFAULT_SCRYPT.keyLen) };
}

/**
 * Checks a password against the stored one-time password in constant time. With no stored
 * record (unknown user, expired or used password) it does the same scrypt work and says no, so
 * that the answer and its timing do not tell those cases apart.
 */
export async function verifyOneTimePassword(stored: StoredOtp | null, password: string): Promise<boolean> {
  const record = stored ?? dummyOtp();
  const given = Buffer.from(password, 'utf8');
  const tooLong = given.length > MAX_PASSWORD_BYTES;
  const actual = await scryptAsync(
    tooLong ? given.subarray(0, MAX_PASSWORD_BYTES) : given,
    record.salt,
    record,
  );
  const equal = actual.length === record.hash.length && timingSafeEqual(actual, record.hash);
  return stored !== null && !tooLong && equal;
}

/** One public key a user registered with `sshkey`. */
export interface AuthorizedKey {
  type: string;
  /** The SSH wire-format key blob (what authorized_keys holds in base64). */
  blob: Buffer;
  /** `SHA256:<base64>` as `ssh-keygen -l` prints it. */
  fingerprint: string;
}

const userRecordSchema = z.object({
  subscribed: z.boolean().optional(),
  ssh: z
    .object({
      publicKeys: z.array(z.object({ type: z.string().max(64), key: z.string().max(16_384) })).max(100),
    })
    .optional(),
});

/** What the gateway reads from a `user:<openid>` record (the bridge's JSON). */
export interface LoginUser {
  /** False once the user unfollowed the Official Account: logins are refused then. */
  active: boolean;
  keys: AuthorizedKey[];
}

function parseUserRecord(raw: string | null): z.infer<typeof userRecordSchema> | null {
  if (raw === null) return null;
  try {
    const parsed = userRecordSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * The login view of a `user:<openid>` record: null when there is none (unknown user) or it
 * cannot be read. A user who unfollowed (`subscribed: false`) is not active.
 */
export function loginUserOf(raw: string | null): LoginUser | null {
  const record = parseUserRecord(raw);
  if (record === null) return null;
  return { active: record.subscribed !== false, keys: keysOf(record.ssh?.publicKeys ?? []) };
}

export function keyFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * The public keys of a `user:<openid>` record (the bridge's JSON). Keys that do not parse are
 * skipped; a record without an `ssh` section has none.
 */
export function authorizedKeysOf(raw: string | null): AuthorizedKey[] {
  return loginUserOf(raw)?.keys ?? [];
}

function keysOf(list: { type: string; key: string }[]): AuthorizedKey[] {
  const out: AuthorizedKey[] = [];
  for (const k of list) {
    const key = utils.parseKey(`${k.type} ${k.key}`);
    if (key instanceof Error || Array.isArray(key)) continue;
    const blob = key.getPublicSSH();
    out.push({ type: key.type, blob, fingerprint: keyFingerprint(blob) });
  }
  return out;
}

/** The registered key whose blob equals the offered one, if any. */
export function findAuthorizedKey(keys: AuthorizedKey[], offeredBlob: Buffer): AuthorizedKey | undefined {
  return keys.find((k) => k.blob.length === offeredBlob.length && timingSafeEqual(k.blob, offeredBlob));
}

/** Verifies a publickey-auth signature over `signedData` with a registered key (ssh2 server example). */
export function verifyKeySignature(
  key: AuthorizedKey,
  signedData: Buffer,
  signature: Buffer,
  hashAlgo: string | undefined,
): boolean {
  const parsed = utils.parseKey(key.blob);
  if (parsed instanceof Error || Array.isArray(parsed)) return false;
  try {
    return parsed.verify(signedData, signature, hashAlgo) === true;
  } catch {
    return false;
  }
}
