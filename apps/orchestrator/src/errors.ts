/**
 * Every failure the orchestrator reports, with a stable `code` callers branch on and, where
 * an HTTP client sees it, a `statusCode`.
 */
export class OrchestratorError extends Error {
  readonly code: string;
  readonly statusCode: number;
  /** Extra fields of the JSON error body (snake_case), for clients that act on them. */
  readonly details: Record<string, unknown> | undefined;
  constructor(
    code: string,
    message: string,
    opts: { statusCode?: number; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'OrchestratorError';
    this.code = code;
    this.statusCode = opts.statusCode ?? 500;
    this.details = opts.details;
  }
}

export class BadRequestError extends OrchestratorError {
  constructor(message: string) {
    super('ORCH_BAD_REQUEST', message, { statusCode: 400 });
  }
}

export class UnauthorizedError extends OrchestratorError {
  constructor() {
    super('ORCH_UNAUTHORIZED', 'missing or wrong bearer token', { statusCode: 401 });
  }
}

export class VmNotFoundError extends OrchestratorError {
  constructor(userId: string) {
    super('ORCH_VM_NOT_FOUND', `no VM for user ${userId}`, { statusCode: 404 });
  }
}

export class IpPoolExhaustedError extends OrchestratorError {
  constructor(subnet: string) {
    super('ORCH_IP_POOL_EXHAUSTED', `no free IP address left in ${subnet}`, { statusCode: 503 });
  }
}

export class MaxVmsError extends OrchestratorError {
  constructor(max: number) {
    super('ORCH_MAX_VMS', `the host already runs its maximum of ${max} VMs`, { statusCode: 503 });
  }
}

export class NoDriverError extends OrchestratorError {
  constructor(reason: string) {
    super('ORCH_NO_DRIVER', `no VM driver can run on this host: ${reason}`, { statusCode: 503 });
  }
}

export class ImageMissingError extends OrchestratorError {
  constructor(message: string) {
    super('ORCH_IMAGE_MISSING', message, { statusCode: 503 });
  }
}

export class VmBusyError extends OrchestratorError {
  constructor(userId: string) {
    super('ORCH_VM_BUSY', `another operation on the VM of ${userId} is still running; retry shortly`, {
      statusCode: 409,
    });
  }
}

/** The VM (and its data disk) belongs to another host: ask that host's orchestrator. */
export class VmOnOtherHostError extends OrchestratorError {
  constructor(userId: string, hostId: string, hostUrl: string | null, extra = '') {
    super(
      'ORCH_VM_ON_OTHER_HOST',
      `the VM of ${userId} belongs to host ${hostId}${hostUrl ? ` (${hostUrl})` : ''}${extra}`,
      { statusCode: 409, details: { host_id: hostId, host_url: hostUrl } },
    );
  }
}

/** Another live orchestrator already uses this HOST_ID or VM_SUBNET (refused at start). */
export class HostConflictError extends OrchestratorError {
  constructor(message: string) {
    super('ORCH_HOST_CONFLICT', message, { statusCode: 500 });
  }
}

export class VmStartError extends OrchestratorError {
  constructor(message: string, cause?: unknown) {
    super('ORCH_VM_START_FAILED', message, { statusCode: 502, cause });
  }
}

export class VmNotReadyError extends OrchestratorError {
  constructor(userId: string, timeoutMs: number, cause?: unknown) {
    super('ORCH_VM_NOT_READY', `the VM of ${userId} did not become ready within ${timeoutMs} ms`, {
      statusCode: 504,
      cause,
    });
  }
}

export class DriverError extends OrchestratorError {
  constructor(message: string, cause?: unknown) {
    super('ORCH_DRIVER_ERROR', message, { statusCode: 500, cause });
  }
}

export class NetworkSetupError extends OrchestratorError {
  constructor(message: string, cause?: unknown) {
    super('ORCH_NETWORK_SETUP_FAILED', message, { statusCode: 500, cause });
  }
}

export class ImageBuildError extends OrchestratorError {
  constructor(message: string, cause?: unknown) {
    super('ORCH_IMAGE_BUILD_FAILED', message, { statusCode: 500, cause });
  }
}
