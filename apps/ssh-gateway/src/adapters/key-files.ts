import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import ssh2 from 'ssh2';
import { keyFingerprint } from '../domain/credentials.js';
import { GatewayError } from '../errors.js';
import { generateEd25519Key } from './openssh-key.js';

// ssh2 is CommonJS: Node's ESM loader does not see all of its named exports.
const { utils } = ssh2;

export interface KeyPair {
  path: string;
  /** OpenSSH private key text. */
  privateKey: string;
  /** One authorized_keys line: `<type> <base64> <comment>`. */
  publicKey: string;
  /** `SHA256:<base64>`, as `ssh-keygen -l` prints it. */
  fingerprint: string;
  /** True when this call generated the key. */
  created: boolean;
}

export interface GatewayKeys {
  /** The gateway's SSH host key (HOST_KEY_PATH): what users' known_hosts hold. */
  host: KeyPair;
  /** The key the gateway logs in to VMs with (`<dir of HOST_KEY_PATH>/upstream_key`); guests trust its `.pub`. */
  upstream: KeyPair;
}

/** Where the upstream key pair lives for a given HOST_KEY_PATH. */
export function upstreamKeyPath(hostKeyPath: string): string {
  return join(dirname(hostKeyPath), 'upstream_key');
}

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

function parsePrivate(path: string, text: string) {
  const parsed = utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error || !key.isPrivateKey()) {
    const why = key instanceof Error ? key.message : 'not a private key';
    throw new GatewayError('SSHGW_KEY_FILE', `${path} is not a usable unencrypted SSH private key (${why})`);
  }
  return key;
}

async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  await writeFile(tmp, text, { mode, flag: 'wx' });
  await rename(tmp, path);
}

/**
 * Loads the private key at `path`, generating an ed25519 key there (mode 0600, directory 0700)
 * when the file does not exist. Two processes starting together agree on one key: the new file
 * is linked into place, never overwritten. `<path>.pub` is (re)written from the private key.
 */
export async function ensureKeyPair(path: string, comment: string): Promise<KeyPair> {
  let text: string;
  let created = false;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) {
      throw new GatewayError('SSHGW_KEY_FILE', `cannot read ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const generated = generateEd25519Key(comment);
      const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
      await writeFile(tmp, generated.privateKey, { mode: 0o600, flag: 'wx' });
      try {
        await link(tmp, path);
        created = true;
      } catch (linkErr) {
        if (!isErrno(linkErr, 'EEXIST')) throw linkErr;
      } finally {
        await unlink(tmp).catch(() => {});
      }
      text = await readFile(path, 'utf8');
    } catch (genErr) {
      if (genErr instanceof GatewayError) throw genErr;
      throw new GatewayError('SSHGW_KEY_FILE', `cannot create ${path}: ${(genErr as Error).message}`, {
        cause: genErr,
      });
    }
  }
  const key = parsePrivate(path, text);
  const blob = key.getPublicSSH();
  const publicKey = `${key.type} ${blob.toString('base64')} ${key.comment || comment}`.trim();
  try {
    const existing = await readFile(`${path}.pub`, 'utf8').catch(() => null);
    if (existing?.trim() !== publicKey) await writeAtomically(`${path}.pub`, `${publicKey}\n`, 0o644);
  } catch (err) {
    throw new GatewayError('SSHGW_KEY_FILE', `cannot write ${path}.pub: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { path, privateKey: text, publicKey, fingerprint: keyFingerprint(blob), created };
}

/**
 * The gateway's host key (HOST_KEY_PATH) and upstream client key (`upstream_key` next to it),
 * generated on first start and reused afterwards. `moltage up` calls this before starting the
 * orchestrator so that it can hand `upstream_key.pub` to the guests.
 */
export async function ensureGatewayKeys(hostKeyPath: string): Promise<GatewayKeys> {
  const host = await ensureKeyPair(hostKeyPath, `moltage-ssh-gateway-host@${hostname()}`);
  const upstream = await ensureKeyPair(upstreamKeyPath(hostKeyPath), `moltage-ssh-gateway@${hostname()}`);
  return { host, upstream };
}
