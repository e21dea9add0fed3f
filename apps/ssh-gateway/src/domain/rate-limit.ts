/** Failed logins counted in the current window. */
export interface FailureCounts {
  ip: number;
  /** Null when the login name is not a valid user name (only the address is counted). */
  user: number | null;
}

export interface AuthLimits {
  perIp: number;
  perUser: number;
}

/** Which limit, if any, a new login attempt is over. Over a limit every login is refused. */
export function loginBlockedBy(counts: FailureCounts, limits: AuthLimits): 'ip' | 'user' | null {
  if (counts.ip >= limits.perIp) return 'ip';
  if (counts.user !== null && counts.user >= limits.perUser) return 'user';
  return null;
}
