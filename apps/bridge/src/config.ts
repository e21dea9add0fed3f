import { env, parseEnv, redisEnv } from '@moltage/core';
import { isValidEncodingAesKey } from '@moltage/wechat';
import { z } from 'zod';

const HOST_RE = /^[A-Za-z0-9.:[\]-]+$/;

/**
 * The bridge's environment (see ../../shared/DESIGN.md and apps/bridge/README.md). Only
 * `WECHAT_APPID`, `WECHAT_APPSECRET`, `WECHAT_TOKEN` and `BRIDGE_BASE_URL` are required.
 */
export const configSchema = z.object({
  PORT: env.port(3000),
  HOST: z.string().regex(HOST_RE, 'must be a host name or IP address').default('0.0.0.0'),
  WECHAT_APPID: z.string().regex(/^\S+$/, 'must not contain spaces'),
  WECHAT_APPSECRET: z.string().regex(/^\S+$/, 'must not contain spaces'),
  WECHAT_TOKEN: z.string().regex(/^\S+$/, 'must not contain spaces'),
  WECHAT_ENCODING_AES_KEY: z
    .string()
    .refine(isValidEncodingAesKey, 'must be the 43-character EncodingAESKey (base64 without "=")')
    .optional(),
  WECHAT_API_BASE: env.url().default('https://api.weixin.qq.com'),
  /** `stable` uses /cgi-bin/stable_token (recommended), `classic` uses /cgi-bin/token. */
  WECHAT_TOKEN_MODE: z.enum(['stable', 'classic']).default('stable'),
  BRIDGE_BASE_URL: env.url().transform((u) => u.replace(/\/+$/, '')),
  ...redisEnv,
  ORCHESTRATOR_URL: env
    .url()
    .default('http://orchestrator:8080')
    .transform((u) => u.replace(/\/+$/, '')),
  ORCHESTRATOR_TOKEN: z.string().optional(),
  SSH_HOST: z.string().regex(HOST_RE, 'must be a host name or IP address').default('your-server.example.com'),
  SSH_PORT: env.port(2222),
  VM_READY_TIMEOUT_MS: env.int(30_000, 1000),
  BIND_ALLOW_PRIVATE: env.bool(false),
  LOG_LEVEL: env.logLevel(),
  LOG_PRETTY: env.bool(false),
  /** Users drained in parallel by one bridge process. */
  BRIDGE_WORKER_CONCURRENCY: env.int(32, 1),
  /** A queue entry whose worker stopped renewing it for this long is taken over by another process. */
  BRIDGE_CLAIM_IDLE_MS: env.int(30_000, 200),
  /** How long the bridge waits for the agent's reply before telling the user it timed out. */
  AGENT_REPLY_TIMEOUT_MS: env.int(300_000, 1000),
  /** Lifetime of a `/r/<id>` page holding a long reply. */
  REPLY_PAGE_TTL_S: env.int(7 * 24 * 3600, 60),
  /** Lifetime of the one-time SSH password issued by the `ssh` command. */
  SSH_OTP_TTL_S: env.int(600, 30),
  /** Grace period on SIGTERM for in-flight work before it is handed back to the queue. */
  BRIDGE_SHUTDOWN_GRACE_MS: env.int(10_000, 0),
  /** Enables the web console at /admin (README → Console); unset = /admin answers 404. */
  ADMIN_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters')
    .max(512, 'must be at most 512 characters')
    .regex(/^\S+$/, 'must not contain spaces')
    .optional(),
  /** Lifetime of a console login. */
  ADMIN_SESSION_TTL_S: env.int(12 * 3600, 60),
  /** The SSH gateway's status port (its METRICS_ADDR as a URL), shown in the console's health view. */
  SSH_GATEWAY_STATUS_URL: env
    .url()
    .transform((u) => u.replace(/\/+$/, ''))
    .optional(),
});

export type Config = z.infer<typeof configSchema>;

/** Parses the environment once; throws ConfigError listing every missing or malformed variable. */
export function loadConfig(environment: NodeJS.ProcessEnv): Config {
  return parseEnv(configSchema, environment);
}
