import type { Logger } from '@moltage/core';
import {
  findAuthorizedKey,
  isValidLoginName,
  loginUserOf,
  parseStoredOtp,
  verifyKeySignature,
  verifyOneTimePassword,
} from '../domain/credentials.js';
import type { CredentialStore, FailureCounter } from '../domain/ports.js';
import { type AuthLimits, loginBlockedBy } from '../domain/rate-limit.js';
import type { AuthMethod, GatewayMetrics } from '../metrics.js';

export type AuthAttempt =
  | { method: 'password'; username: string; password: string; address: string }
  | {
      method: 'publickey';
      username: string;
      address: string;
      /** The offered key's wire-format blob. */
      keyBlob: Buffer;
      /** Absent when the client only asks whether the key would be accepted. */
      signature?: Buffer;
      signedData?: Buffer;
      hashAlgo?: string;
    };

export type AuthOutcome =
  /** Logged in. */
  | { result: 'accept'; openid: string; detail: string }
  /** Key query answered "yes, sign with it". */
  | { result: 'key-ok' }
  /** Refused; `failure` counts toward the rate limits and MAX_AUTH_TRIES. */
  | { result: 'reject'; failure: boolean; reason: string };

export interface AuthenticatorDeps {
  credentials: CredentialStore;
  failures: FailureCounter;
  limits: AuthLimits;
  metrics: GatewayMetrics;
  logger: Logger;
}

/**
 * Login decisions. Username = openid. Secrets: the one-time password the bridge issued (consumed
 * by the first login that uses it) or a public key the user registered, for users who still
 * follow the Official Account (`subscribed` is not false). Unknown users, wrong
 * passwords, used or expired passwords and other users' keys all get the same refusal after the
 * same work; failures are counted per source address and per user, and over a limit every login
 * is refused until the window ends.
 */
export class Authenticator {
  constructor(private readonly d: AuthenticatorDeps) {}

  async decide(attempt: AuthAttempt): Promise<AuthOutcome> {
    const valid = isValidLoginName(attempt.username);
    const openid = valid ? attempt.username : null;
    const logUser = openid ?? '<invalid name>';
    const method: AuthMethod = attempt.method;

    // Count the attempt before the (slow) check, atomically, so parallel connections cannot all
    // slip under the limit; an attempt that turns out not to fail is taken back below.
    const counted = await this.d.failures.record(attempt.address, openid);
    const before = { ip: counted.ip - 1, user: counted.user === null ? null : counted.user - 1 };
    const release = () => this.d.failures.release(attempt.address, openid);
    const blocked = loginBlockedBy(before, this.d.limits);
    if (blocked) {
      await release();
      this.d.metrics.authFailed(method, 'rate_limited');
      this.d.logger.warn(
        { ip: attempt.address, openid: logUser, method, limit: blocked },
        'login refused: too many failed logins',
      );
      return { result: 'reject', failure: false, reason: `rate-limited-${blocked}` };
    }

    let outcome: AuthOutcome;
    if (attempt.method === 'password') {
      outcome = await this.#password(openid, attempt.password);
    } else {
      outcome = await this.#publicKey(openid, attempt);
    }
    if (outcome.result === 'key-ok') {
      await release();
      return outcome;
    }
    if (outcome.result === 'accept') {
      await release();
      this.d.metrics.authSucceeded(method);
      return outcome;
    }
    if (outcome.failure) {
      this.d.metrics.authFailed(method, 'invalid');
      this.d.logger.warn(
        { ip: attempt.address, openid: logUser, method, reason: outcome.reason, failures: counted },
        'login failed',
      );
    } else {
      await release();
    }
    return outcome;
  }

  async #password(openid: string | null, password: string): Promise<AuthOutcome> {
    const [raw, userRaw] =
      openid === null
        ? [null, null]
        : await Promise.all([
            this.d.credentials.oneTimePassword(openid),
            this.d.credentials.userRecord(openid),
          ]);
    const user = loginUserOf(userRaw);
    const stored = parseStoredOtp(raw);
    // Always hash, also without a stored password, so that every refusal costs the same.
    const matches = await verifyOneTimePassword(stored, password);
    if (openid !== null && raw !== null && matches && user?.active) {
      if (await this.d.credentials.consumeOneTimePassword(openid, raw)) {
        return { result: 'accept', openid, detail: 'one-time password' };
      }
      return { result: 'reject', failure: true, reason: 'password already used' };
    }
    let reason = 'wrong password';
    if (openid === null) reason = 'invalid login name';
    else if (user === null) reason = 'unknown user';
    else if (!user.active) reason = 'user unfollowed the account';
    else if (stored === null) reason = 'no one-time password issued';
    return { result: 'reject', failure: true, reason };
  }

  async #publicKey(
    openid: string | null,
    attempt: Extract<AuthAttempt, { method: 'publickey' }>,
  ): Promise<AuthOutcome> {
    const user = openid === null ? null : loginUserOf(await this.d.credentials.userRecord(openid));
    const key = user?.active ? findAuthorizedKey(user.keys, attempt.keyBlob) : undefined;
    if (attempt.signature === undefined || attempt.signedData === undefined) {
      // A query: OpenSSH offers each of its keys this way. Not a failed login by itself.
      return key ? { result: 'key-ok' } : { result: 'reject', failure: false, reason: 'key not registered' };
    }
    if (
      openid !== null &&
      key &&
      verifyKeySignature(key, attempt.signedData, attempt.signature, attempt.hashAlgo)
    ) {
      return { result: 'accept', openid, detail: key.fingerprint };
    }
    return { result: 'reject', failure: true, reason: key ? 'bad signature' : 'key not registered' };
  }
}
