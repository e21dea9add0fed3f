/**
 * Every error the bridge throws on purpose. Callers branch on `code`; HTTP handlers map an error
 * to a reply with {@link httpReplyFor}. Codes are stable and prefixed `BRIDGE_`.
 */
export type BridgeErrorCode =
  | 'BRIDGE_BAD_SIGNATURE'
  | 'BRIDGE_STALE_TIMESTAMP'
  | 'BRIDGE_BAD_REQUEST'
  | 'BRIDGE_BODY_TOO_LARGE'
  | 'BRIDGE_SAFE_MODE_UNCONFIGURED'
  | 'BRIDGE_UNAUTHORIZED'
  | 'BRIDGE_FORBIDDEN'
  | 'BRIDGE_NOT_FOUND'
  | 'BRIDGE_QUEUE_UNAVAILABLE'
  | 'BRIDGE_SHUTTING_DOWN'
  | 'BRIDGE_ORCH_UNAVAILABLE'
  | 'BRIDGE_ORCH_VM_ERROR'
  | 'BRIDGE_VM_TIMEOUT'
  | 'BRIDGE_VM_NO_AGENT'
  | 'BRIDGE_AGENT_UNREACHABLE'
  | 'BRIDGE_AGENT_REJECTED'
  | 'BRIDGE_BIND_URL_INVALID'
  | 'BRIDGE_BIND_URL_FORBIDDEN'
  | 'BRIDGE_SSH_KEY_INVALID'
  | 'BRIDGE_SEND_FAILED'
  | 'BRIDGE_VM_HOST_DOWN'
  | 'BRIDGE_ABORTED'
  | 'BRIDGE_CONSOLE_DISABLED';

const STATUS: Partial<Record<BridgeErrorCode, number>> = {
  BRIDGE_BAD_SIGNATURE: 401,
  BRIDGE_STALE_TIMESTAMP: 401,
  BRIDGE_BAD_REQUEST: 400,
  BRIDGE_BODY_TOO_LARGE: 400,
  BRIDGE_SAFE_MODE_UNCONFIGURED: 400,
  BRIDGE_UNAUTHORIZED: 401,
  BRIDGE_FORBIDDEN: 403,
  BRIDGE_NOT_FOUND: 404,
  BRIDGE_QUEUE_UNAVAILABLE: 503,
  BRIDGE_SHUTTING_DOWN: 503,
  BRIDGE_CONSOLE_DISABLED: 404,
};

export class BridgeError extends Error {
  readonly code: BridgeErrorCode;
  readonly statusCode: number | undefined;

  constructor(code: BridgeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BridgeError';
    this.code = code;
    this.statusCode = STATUS[code];
  }
}

export function isBridgeError(err: unknown, code?: BridgeErrorCode): err is BridgeError {
  return err instanceof BridgeError && (code === undefined || err.code === code);
}

/** The one mapping from an error to an HTTP answer: known errors keep their status, the rest are 500. */
export function httpReplyFor(err: unknown): { statusCode: number; body: { error: string; code: string } } {
  if (err instanceof BridgeError && err.statusCode !== undefined) {
    return { statusCode: err.statusCode, body: { error: err.message, code: err.code } };
  }
  return { statusCode: 500, body: { error: 'internal error', code: 'BRIDGE_INTERNAL' } };
}
