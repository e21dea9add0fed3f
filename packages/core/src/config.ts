import { z } from 'zod';

/** Thrown when the environment does not satisfy a service's config schema. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/**
 * Parses `env` with `schema` once. Every problem is listed, one line each, in the form
 * `Missing required environment variable: WECHAT_TOKEN` or
 * `Invalid environment variable PORT: <reason>`.
 */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  // Empty strings count as unset, as in most .env tooling.
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') cleaned[k] = v;
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path.join('.') || '(environment)';
    if (cleaned[name] === undefined) return `Missing required environment variable: ${name}`;
    return `Invalid environment variable ${name}: ${issue.message}`;
  });
  throw new ConfigError([...new Set(problems)]);
}

/** Reusable field schemas for environment variables (all strings in, typed values out). */
export const env = {
  port: (def: number) => z.coerce.number().int().min(0).max(65535).default(def),
  url: () => z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  redisUrl: () =>
    z.url({ protocol: /^rediss?$/, error: 'must be a redis:// URL' }).default('redis://localhost:6379'),
  bool: (def: boolean) =>
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
      .default(def ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
  int: (def: number, min = 0) => z.coerce.number().int().min(min).default(def),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
};
