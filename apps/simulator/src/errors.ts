/** Base class of the simulator's own errors (not WeChat errcodes, which are answers, not errors). */
export class SimError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly details?: unknown;

  constructor(
    code: string,
    message: string,
    statusCode: number,
    options?: { cause?: unknown; details?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SimError';
    this.code = code;
    this.statusCode = statusCode;
    if (options?.details !== undefined) this.details = options.details;
  }
}

/** The request or option is malformed; nothing was changed. */
export class SimValidationError extends SimError {
  constructor(message: string, details?: unknown) {
    super('SIM_VALIDATION', message, 400, { details });
    this.name = 'SimValidationError';
  }
}

export class SimNotFoundError extends SimError {
  constructor(code: 'SIM_USER_NOT_FOUND' | 'SIM_PUSH_NOT_FOUND' | 'SIM_NOT_FOUND', message: string) {
    super(code, message, 404);
    this.name = 'SimNotFoundError';
  }
}

/** The request is well-formed but the simulator's state does not allow it; nothing was changed. */
export class SimConflictError extends SimError {
  constructor(
    code: 'SIM_USER_EXISTS' | 'SIM_NOT_FOLLOWING' | 'SIM_ALREADY_FOLLOWING' | 'SIM_NO_BRIDGE_URL',
    message: string,
  ) {
    super(code, message, 409);
    this.name = 'SimConflictError';
  }
}

/** The simulator is shutting down. */
export class SimClosedError extends SimError {
  constructor() {
    super('SIM_CLOSED', 'the simulator is shutting down', 503);
    this.name = 'SimClosedError';
  }
}
