import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SshPublicKey } from '../domain/ssh-key.js';
import type { StoredSshPassword } from '../domain/ssh-password.js';
import { keys } from '../keys.js';

export interface StoredSshKey {
  type: string;
  /** base64 blob as in authorized_keys */
  key: string;
  comment: string;
  fingerprint: string;
  addedAt: string;
}

export interface Binding {
  /** The user's own OpenClaw webhook URL. */
  url: string;
  /** Bearer token for that webhook (secret). */
  token: string;
  /** The callback token issued to that instance (secret); revoked by unbind. */
  callbackToken: string;
  boundAt: string;
}

/** The JSON at `user:<openid>` (README → Redis keys). Written only by the worker holding `lease:<openid>`. */
export interface UserRecord {
  openid: string;
  createdAt: string;
  lastSeenAt: string;
  subscribed: boolean;
  unsubscribedAt: string | null;
  /** The callback token given to the user's VM (secret). */
  callbackToken: string;
  binding: Binding | null;
  ssh: { publicKeys: StoredSshKey[]; otpIssuedAt: string | null };
}

export type CallbackTokenKind = 'vm' | 'bind';

export const MAX_SSH_KEYS = 10;
const LAST_SEEN_RESOLUTION_MS = 60_000;

export function newSecretToken(): string {
  return randomBytes(32).toString('base64url');
}

export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class UserStore {
  constructor(private readonly redis: Redis) {}

  async get(openid: string): Promise<UserRecord | null> {
    const raw = await this.redis.get(keys.user(openid));
    return raw ? (JSON.parse(raw) as UserRecord) : null;
  }

  async save(user: UserRecord): Promise<void> {
    await this.redis.set(keys.user(user.openid), JSON.stringify(user));
  }

  /** Loads the user, creating it (with its VM callback token) on first contact, and records the visit. */
  async touch(openid: string, now: Date, subscribed?: boolean): Promise<UserRecord> {
    const iso = now.toISOString();
    let user = await this.get(openid);
    if (!user) {
      const callbackToken = newSecretToken();
      user = {
        openid,
        createdAt: iso,
        lastSeenAt: iso,
        subscribed: subscribed ?? true,
        unsubscribedAt: null,
        callbackToken,
        binding: null,
        ssh: { publicKeys: [], otpIssuedAt: null },
      };
      await this.redis
        .multi()
        .set(keys.callbackToken(tokenDigest(callbackToken)), JSON.stringify({ openid, kind: 'vm' }))
        .set(keys.user(openid), JSON.stringify(user))
        .exec();
      return user;
    }
    const changes = subscribed !== undefined && subscribed !== user.subscribed;
    // lastSeenAt is kept to the minute: most messages need no write at all.
    if (!changes && now.getTime() - Date.parse(user.lastSeenAt) < LAST_SEEN_RESOLUTION_MS) return user;
    user.lastSeenAt = iso;
    if (subscribed === true) {
      user.subscribed = true;
      user.unsubscribedAt = null;
    } else if (subscribed === false) {
      user.subscribed = false;
      user.unsubscribedAt = iso;
    }
    await this.save(user);
    return user;
  }

  /** Routes the user to their own instance; issues (and returns) a fresh callback token for it. */
  async bind(user: UserRecord, url: string, token: string, now: Date): Promise<UserRecord> {
    const callbackToken = newSecretToken();
    const old = user.binding;
    const next: UserRecord = { ...user, binding: { url, token, callbackToken, boundAt: now.toISOString() } };
    const tx = this.redis
      .multi()
      .set(
        keys.callbackToken(tokenDigest(callbackToken)),
        JSON.stringify({ openid: user.openid, kind: 'bind' }),
      )
      .set(keys.user(user.openid), JSON.stringify(next));
    if (old) tx.del(keys.callbackToken(tokenDigest(old.callbackToken)));
    await tx.exec();
    return next;
  }

  /** Removes the binding and revokes its callback token. */
  async unbind(user: UserRecord): Promise<UserRecord> {
    if (!user.binding) return user;
    const next: UserRecord = { ...user, binding: null };
    await this.redis
      .multi()
      .del(keys.callbackToken(tokenDigest(user.binding.callbackToken)))
      .set(keys.user(user.openid), JSON.stringify(next))
      .exec();
    return next;
  }

  /** The owner of a callback token, or null when the token is unknown or revoked. */
  async resolveCallbackToken(token: string): Promise<{ openid: string; kind: CallbackTokenKind } | null> {
    const raw = await this.redis.get(keys.callbackToken(tokenDigest(token)));
    return raw ? (JSON.parse(raw) as { openid: string; kind: CallbackTokenKind }) : null;
  }

  /** Adds (or refreshes) a public key; returns false when the user already has the maximum. */
  async addSshKey(user: UserRecord, key: SshPublicKey, now: Date): Promise<boolean> {
    const others = user.ssh.publicKeys.filter((k) => k.fingerprint !== key.fingerprint);
    if (others.length >= MAX_SSH_KEYS) return false;
    user.ssh.publicKeys = [
      ...others,
      {
        type: key.type,
        key: key.key,
        comment: key.comment,
        fingerprint: key.fingerprint,
        addedAt: now.toISOString(),
      },
    ];
    await this.save(user);
    return true;
  }

  async clearSshKeys(user: UserRecord): Promise<void> {
    user.ssh.publicKeys = [];
    await this.save(user);
  }

  /** Stores a one-time SSH password (hashed) for `ttlS` seconds, replacing any previous one. */
  async storeSshPassword(user: UserRecord, stored: StoredSshPassword, ttlS: number): Promise<void> {
    user.ssh.otpIssuedAt = stored.issuedAt;
    await this.redis
      .multi()
      .set(keys.sshOtp(user.openid), JSON.stringify(stored), 'EX', ttlS)
      .set(keys.user(user.openid), JSON.stringify(user))
      .exec();
  }
}

/** Long replies shown at `GET /r/<id>`; ids are 128 random bits. */
export class ReplyPages {
  constructor(
    private readonly redis: Redis,
    private readonly ttlS: number,
  ) {}

  static newId(): string {
    return randomBytes(16).toString('base64url');
  }

  static isId(id: string): boolean {
    return /^[A-Za-z0-9_-]{22}$/.test(id);
  }

  async put(id: string, page: { openid: string; text: string; createdAt: string }): Promise<void> {
    await this.redis.set(keys.page(id), JSON.stringify(page), 'EX', this.ttlS, 'NX');
  }

  async get(id: string): Promise<{ openid: string; text: string; createdAt: string } | null> {
    if (!ReplyPages.isId(id)) return null;
    const raw = await this.redis.get(keys.page(id));
    return raw ? JSON.parse(raw) : null;
  }
}
