/**
 * Every failure the gateway reports on purpose, with a stable `code` prefixed `SSHGW_`.
 * `userMessage` is what the SSH user reads on stderr (never internals or secrets).
 */
export type GatewayErrorCode =
  | 'SSHGW_KEY_FILE'
  | 'SSHGW_ORCH_UNAVAILABLE'
  | 'SSHGW_ORCH_REJECTED'
  | 'SSHGW_VM_START_FAILED'
  | 'SSHGW_VM_HOST_DOWN'
  | 'SSHGW_VM_UNREACHABLE'
  | 'SSHGW_VM_HOST_KEY_MISMATCH'
  | 'SSHGW_VM_AUTH_FAILED'
  | 'SSHGW_NO_VM_ENDPOINT'
  | 'SSHGW_REDIS';

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly userMessage: string;
  constructor(code: GatewayErrorCode, message: string, opts: { userMessage?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.userMessage = opts.userMessage ?? 'The SSH gateway could not reach your VM. Please try again later.';
  }
}

/** The message a user sees for any error (a GatewayError's userMessage, else a generic line). */
export function userMessageOf(err: unknown): string {
  return err instanceof GatewayError
    ? err.userMessage
    : 'The SSH gateway could not reach your VM. Please try again later.';
}
