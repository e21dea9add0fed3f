/** Every Redis key this library writes. `prefix` defaults to `wechat:token:`. */
export const DEFAULT_TOKEN_KEY_PREFIX = 'wechat:token:';

/** JSON `{ token, expiresAt }` for one AppID, with a TTL equal to the token's remaining life. */
export function tokenKey(prefix: string, appId: string): string {
  return `${prefix}${appId}`;
}

/** Short-lived refresh lock for one AppID (SET NX PX; released by compare-and-delete). */
export function tokenLockKey(prefix: string, appId: string): string {
  return `${prefix}${appId}:lock`;
}
