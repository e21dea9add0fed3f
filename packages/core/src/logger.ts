import { type ChildLoggerOptions, type Logger, pino } from 'pino';

/**
 * Paths whose values never reach a log line: auth headers, WeChat secrets and AES keys,
 * SSH passwords and agent/callback tokens, wherever they appear in a logged object.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  '*.authorization',
  'password',
  '*.password',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'appSecret',
  '*.appSecret',
  'access_token',
  '*.access_token',
  'agent_token',
  '*.agent_token',
  'callback_token',
  '*.callback_token',
  'authToken',
  '*.authToken',
  'encodingAesKey',
  '*.encodingAesKey',
  'WECHAT_APPSECRET',
  'WECHAT_ENCODING_AES_KEY',
  'WECHAT_TOKEN',
  'ORCHESTRATOR_TOKEN',
  'LLM_API_KEY',
  '*.WECHAT_APPSECRET',
  '*.WECHAT_ENCODING_AES_KEY',
  '*.WECHAT_TOKEN',
  '*.ORCHESTRATOR_TOKEN',
  '*.LLM_API_KEY',
];

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Pretty output for a terminal (dev/demo); JSON otherwise. */
  pretty?: boolean;
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const base = {
    name: opts.name,
    level: opts.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  if (opts.pretty) {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
      },
    });
  }
  return opts.destination ? pino(base, opts.destination as pino.DestinationStream) : pino(base);
}

export type { Logger };

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type Bindings = Record<string, unknown>;
type ChildOptions = ChildLoggerOptions<never>;

/**
 * A child logger that is made on its first log line. Fastify makes a child per request to bind
 * the request id; with redaction on, pino's child() costs more than the rest of a small request's
 * logging, and most requests log nothing at the configured level (the bridge's push ack logs at
 * debug). Lines below the parent's level cost a level check.
 */
class DeferredChild {
  readonly #parent: Logger;
  readonly #bindings: Bindings;
  readonly #opts: ChildOptions;
  #real: Logger | undefined;

  constructor(parent: Logger, bindings: Bindings, opts: ChildOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#opts = opts;
  }

  #logger(): Logger {
    this.#real ??= this.#parent.child(this.#bindings, this.#opts);
    return this.#real;
  }

  #log(level: LevelName, args: unknown[]): void {
    if (this.#real === undefined && !this.#parent.isLevelEnabled(level)) return;
    (this.#logger()[level] as (...a: unknown[]) => void)(...args);
  }

  get level(): string {
    return this.#real?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#logger().level = level;
  }

  isLevelEnabled(level: string): boolean {
    return (this.#real ?? this.#parent).isLevelEnabled(level);
  }

  bindings(): Bindings {
    return this.#logger().bindings();
  }

  child(bindings: Bindings, opts?: ChildOptions): Logger {
    return this.#logger().child(bindings, opts);
  }

  fatal(...args: unknown[]): void {
    this.#log('fatal', args);
  }
  error(...args: unknown[]): void {
    this.#log('error', args);
  }
  warn(...args: unknown[]): void {
    this.#log('warn', args);
  }
  info(...args: unknown[]): void {
    this.#log('info', args);
  }
  debug(...args: unknown[]): void {
    this.#log('debug', args);
  }
  trace(...args: unknown[]): void {
    this.#log('trace', args);
  }
  silent(): void {}
}

/**
 * `logger.child(bindings, opts)`, made only when something is logged through it (see
 * DeferredChild); for Fastify's `childLoggerFactory`. Typed as a Logger: it has the methods
 * Fastify and request handlers use (the level methods, level, isLevelEnabled, bindings, child).
 */
export function deferredChild(logger: Logger, bindings: Bindings, opts?: ChildOptions): Logger {
  return new DeferredChild(logger, bindings, opts ?? {}) as unknown as Logger;
}
