/** Stable codes of the errors this plugin throws on purpose. Callers branch on `err.code`. */
export type PluginErrorCode =
  | 'OCP_BAD_CONFIG'
  | 'OCP_BAD_PAYLOAD'
  | 'OCP_PAYLOAD_TOO_LARGE'
  | 'OCP_CALLBACK_FAILED'
  | 'OCP_CALLBACK_REJECTED'
  | 'OCP_NO_CALLBACK_ROUTE'
  | 'OCP_TUNNEL_FAILED'
  | 'OCP_LISTEN_FAILED';

/** Base class of every error this plugin throws on purpose. */
export class PluginError extends Error {
  readonly code: PluginErrorCode;
  /** HTTP status a webhook client sees for this error, when it reaches one. */
  readonly statusCode?: number;

  constructor(code: PluginErrorCode, message: string, options?: { cause?: unknown; statusCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PluginError';
    this.code = code;
    if (options?.statusCode !== undefined) this.statusCode = options.statusCode;
  }
}

/** Invalid plugin or channel config; the message lists every bad field. */
export class ConfigError extends PluginError {
  readonly issues: string[];
  constructor(issues: string[]) {
    super('OCP_BAD_CONFIG', `invalid webhook-server config: ${issues.join('; ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** A webhook body the plugin cannot accept; `message` is the reason the client sees. */
export class PayloadError extends PluginError {
  constructor(message: string) {
    super('OCP_BAD_PAYLOAD', message, { statusCode: 400 });
    this.name = 'PayloadError';
  }
}

/** The callback was not delivered (network errors or 5xx until the retry budget ran out). */
export class CallbackError extends PluginError {
  readonly attempts: number;
  readonly lastStatus?: number;
  constructor(
    code: 'OCP_CALLBACK_FAILED' | 'OCP_CALLBACK_REJECTED',
    message: string,
    opts: { attempts: number; lastStatus?: number; cause?: unknown },
  ) {
    super(code, message, { cause: opts.cause });
    this.name = 'CallbackError';
    this.attempts = opts.attempts;
    if (opts.lastStatus !== undefined) this.lastStatus = opts.lastStatus;
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const cause =
      err.cause instanceof Error && !err.message.includes(err.cause.message) ? err.cause.message : '';
    return cause ? `${err.message}: ${cause}` : err.message;
  }
  return String(err);
}
