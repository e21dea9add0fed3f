import { type Logger, pino } from 'pino';

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
