import { CHANNEL_ID } from './constants.js';

const OPENID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const PREFIX = new RegExp(`^(${CHANNEL_ID}:)?(user:)?`, 'i');

/** `moltage:<openid>`: how a WeChat user is addressed inside OpenClaw. */
export function userAddress(openid: string): string {
  return `${CHANNEL_ID}:${openid}`;
}

/** `moltage:<openid>`, `user:<openid>` or a bare openid → the openid; undefined when it is not one. */
export function normalizeTarget(raw: string): string | undefined {
  const trimmed = raw.trim().replace(PREFIX, '');
  return OPENID_PATTERN.test(trimmed) ? trimmed : undefined;
}

/**
 * Every WeChat user gets a session of their own, whatever `session.dmScope` says: with the
 * default `main` scope all direct messages of all channels would share one session. Scopes
 * that already separate peers are kept.
 */
export function withPerUserSessions<T extends { session?: { dmScope?: string | null } | null }>(cfg: T): T {
  const scope = cfg.session?.dmScope;
  if (scope !== undefined && scope !== null && scope !== 'main') return cfg;
  return { ...cfg, session: { ...cfg.session, dmScope: 'per-channel-peer' } };
}

/** Joins the text of a reply payload and links to any media it carries (WeChat gets text only). */
export function replyText(payload: { text?: string; mediaUrl?: string; mediaUrls?: string[] }): string {
  const media = [...new Set([...(payload.mediaUrls ?? []), ...(payload.mediaUrl ? [payload.mediaUrl] : [])])];
  return [payload.text?.trim() ?? '', ...media].filter((part) => part !== '').join('\n');
}
