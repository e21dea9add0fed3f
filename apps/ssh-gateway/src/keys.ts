/**
 * Every Redis key the gateway reads or writes, built in one place (README.md → Operations →
 * Redis keys). `user:`, `sshotp:` and `vm:` belong to the bridge and the orchestrator; the
 * gateway reads them and consumes `sshotp:`. The `sshfail:` and `sshhostkey:` keys are its own.
 */
export const keys = {
  /** JSON string written by the bridge: the user record, with `ssh.publicKeys[]`. Read-only here. */
  user: (openid: string) => `user:${openid}`,
  /** JSON string with EX written by the bridge: the scrypt hash of the one-time password. Deleted on use. */
  sshOtp: (openid: string) => `sshotp:${openid}`,
  /** JSON string written by the orchestrator: the VM record. Read-only here. */
  vm: (openid: string) => `vm:${openid}`,
  /** Integer with EX: failed logins from one source address in the current window. */
  authFailIp: (address: string) => `sshfail:ip:${address}`,
  /** Integer with EX: failed logins as one user in the current window. */
  authFailUser: (openid: string) => `sshfail:user:${openid}`,
  /** JSON string: the VM host key pinned on first use ({sha256, vmCreatedAt, pinnedAt}). */
  hostKeyPin: (openid: string) => `sshhostkey:${openid}`,
} as const;
