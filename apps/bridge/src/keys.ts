/**
 * Every Redis key the bridge reads or writes, built in one place. Names follow `<area>:<id>`.
 * apps/bridge/README.md (Operations → Redis keys) documents each one; keep both in step.
 */
export const keys = {
  /** JSON string: the user (binding, SSH public keys, callback token, times). Shared with the SSH gateway. */
  user: (openid: string) => `user:${openid}`,
  /** The orchestrator's VM record (read-only for the bridge). */
  vm: (openid: string) => `vm:${openid}`,
  /** `SET NX EX`: one WeChat push (MsgId, or FromUserName:CreateTime:Event) was queued already. */
  dedup: (pushKey: string) => `dedup:${pushKey}`,
  /** Stream: the user's pending work (pushes, agent replies, notices), oldest first. */
  inbox: (openid: string) => `inbox:${openid}`,
  /**
   * Integer: the reply and notice entries in `inbox:<openid>` (they go before pushes), kept with
   * every change of the inbox so the next entry is found without scanning it; deleted with it.
   */
  answers: (openid: string) => `answers:${openid}`,
  /**
   * String with EX: the id of the user's notification in `queue:ready` not acknowledged yet; while
   * it exists, queueing more for the user adds no notification (its drain sees the new entries).
   */
  notified: (openid: string) => `notified:${openid}`,
  /** Stream with consumer group {@link CONSUMER_GROUP}: "user X has work" notifications. */
  ready: () => 'queue:ready',
  /** Counter: entries in all inboxes (queue depth). */
  depth: () => 'queue:depth',
  /** String with PX: the worker that currently drains a user's inbox (one at a time per user). */
  lease: (openid: string) => `lease:${openid}`,
  /** Hash: per-entry processing state (attempts, answer, dispatch, each part sent). */
  ledger: (entryId: string) => `ledger:${entryId}`,
  /** Integer with EX 48 h: customer-service messages used since the user's last action. */
  quota: (openid: string) => `quota:${openid}`,
  /**
   * List with EX 7 days: JSON {text, at} of answers the customer-service budget did not let out,
   * sent ahead of the answer to the user's next message.
   */
  held: (openid: string) => `held:${openid}`,
  /** Hash: messages dispatched to the agent and not answered yet (entry id → JSON). */
  waits: (openid: string) => `waits:${openid}`,
  /** Sorted set: `<openid>\t<entry id>` scored by the reply deadline (ms). */
  waitsDue: () => 'waits:due',
  /** String: sha256(callback token) → JSON {openid, kind}. */
  callbackToken: (tokenSha256Hex: string) => `cbtoken:${tokenSha256Hex}`,
  /** JSON string with EX: the hashed one-time SSH password. Consumed by the SSH gateway. */
  sshOtp: (openid: string) => `sshotp:${openid}`,
  /** JSON string with EX: a long reply shown at `GET /r/<id>`. */
  page: (id: string) => `page:${id}`,
  /** Capped stream (console on): pushes accepted or deduplicated and agent replies received. */
  consoleMessages: () => 'console:messages',
  /** Sorted set (console on): openid → time of the user's last push (ms), for the users view. */
  consoleUsers: () => 'console:users',
  /** Hash (console on): openid → JSON {at, kind, preview} of the user's last push. */
  consoleLast: () => 'console:last',
  /** JSON string with EX: a console login, keyed by sha256 of the session cookie. */
  adminSession: (sidSha256Hex: string) => `admin:session:${sidSha256Hex}`,
  /** Integer with EX: failed console logins from one client address. */
  adminLoginFailures: (ip: string) => `admin:loginfail:${ip}`,
} as const;

/** The consumer group of {@link keys.ready}. */
export const CONSUMER_GROUP = 'bridge';
