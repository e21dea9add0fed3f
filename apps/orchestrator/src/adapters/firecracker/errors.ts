import { OrchestratorError } from '../../errors.js';

/** Stable error codes thrown by the Firecracker driver. Callers branch on `err.code`. */
export type FirecrackerErrorCode =
  /** Firecracker answered an API call with an error (`status`, `faultMessage`). */
  | 'ORCH_FIRECRACKER_API'
  /** An API call got no answer within its timeout. */
  | 'ORCH_FIRECRACKER_API_TIMEOUT'
  /** The API socket is missing, refuses connections, or the connection broke. */
  | 'ORCH_FIRECRACKER_API_UNREACHABLE'
  /** The firecracker (or jailer) process could not be started or died before its API came up. */
  | 'ORCH_FIRECRACKER_SPAWN'
  /** The process runs but its API socket did not appear in time. */
  | 'ORCH_FIRECRACKER_SOCKET_TIMEOUT'
  /** Configuring or booting the microVM failed; `cause` holds the step's error. */
  | 'ORCH_FIRECRACKER_START'
  /** The VM spec cannot be run by Firecracker (network mode, sizes, names, path lengths). */
  | 'ORCH_FIRECRACKER_BAD_SPEC'
  /** The API socket path belongs to a Firecracker that is still running. */
  | 'ORCH_FIRECRACKER_SOCKET_IN_USE'
  /** Building the jailer's chroot (hard links, copies, ownership) failed. */
  | 'ORCH_FIRECRACKER_JAIL'
  /** The driver cannot run on this host (binary, /dev/kvm, jailer). */
  | 'ORCH_FIRECRACKER_UNAVAILABLE'
  /** A VM process survived SIGKILL. */
  | 'ORCH_FIRECRACKER_KILL';

/**
 * Base class of every error the Firecracker driver throws on purpose; an OrchestratorError, so
 * the service maps it to HTTP like any other (`statusCode`, default 500).
 */
export class FirecrackerError extends OrchestratorError {
  declare readonly code: FirecrackerErrorCode;

  constructor(
    code: FirecrackerErrorCode,
    message: string,
    options: { cause?: unknown; statusCode?: number } = {},
  ) {
    super(code, message, options);
    this.name = 'FirecrackerError';
  }
}

/** A call on Firecracker's API failed: which call, on which socket, and what Firecracker said. */
export class FirecrackerApiError extends FirecrackerError {
  readonly method: string;
  readonly path: string;
  readonly socketPath: string;
  /** HTTP status Firecracker answered with; undefined when no answer came. */
  readonly status: number | undefined;
  /** Firecracker's `fault_message`, when it sent one. */
  readonly faultMessage: string | undefined;

  constructor(
    code: Extract<
      FirecrackerErrorCode,
      'ORCH_FIRECRACKER_API' | 'ORCH_FIRECRACKER_API_TIMEOUT' | 'ORCH_FIRECRACKER_API_UNREACHABLE'
    >,
    details: {
      method: string;
      path: string;
      socketPath: string;
      status?: number;
      faultMessage?: string;
      reason?: string;
      cause?: unknown;
    },
  ) {
    const what = `Firecracker API ${details.method} ${details.path} (socket ${details.socketPath})`;
    const why =
      details.status !== undefined
        ? `answered ${details.status}${details.faultMessage ? `: ${details.faultMessage}` : ''}`
        : (details.reason ?? 'failed');
    super(code, `${what} ${why}`, { cause: details.cause });
    this.name = 'FirecrackerApiError';
    this.method = details.method;
    this.path = details.path;
    this.socketPath = details.socketPath;
    this.status = details.status;
    this.faultMessage = details.faultMessage;
  }
}

export function isFirecrackerError(err: unknown): err is FirecrackerError {
  return err instanceof FirecrackerError;
}
