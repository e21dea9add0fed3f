import { env, parseEnv, redisEnv } from '@moltage/core';
import { z } from 'zod';

/** A `host:port` (IPv6 hosts in brackets: `[::]:2222`). */
export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListenAddress(text: string): ListenAddress | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}

const listenAddress = (def: string) =>
  z
    .string()
    .default(def)
    .refine((v) => parseListenAddress(v) !== null, {
      error: 'must be host:port, e.g. 0.0.0.0:2222 or [::]:2222',
    })
    .transform((v) => parseListenAddress(v)!);

/**
 * The gateway's environment (../../shared/DESIGN.md "Environment variables"; the extras are in
 * README.md). Nothing is required: every variable has a default.
 */
export const configSchema = z.object({
  LISTEN_ADDR: listenAddress('0.0.0.0:2222'),
  /** Status and Prometheus metrics (`GET /health`, `GET /metrics`); `off` disables it. */
  METRICS_ADDR: z
    .string()
    .default('127.0.0.1:9222')
    .refine((v) => v === 'off' || parseListenAddress(v) !== null, { error: 'must be host:port or off' })
    .transform((v) => (v === 'off' ? null : parseListenAddress(v)!)),
  ...redisEnv,
  ORCHESTRATOR_URL: env
    .url()
    .default('http://orchestrator:8080')
    .transform((u) => u.replace(/\/+$/, '')),
  ORCHESTRATOR_TOKEN: z.string().optional(),
  HOST_KEY_PATH: z.string().default('/etc/ssh-gateway/host_key'),
  /** The account the gateway logs in as inside every VM (guest contract). */
  VM_SSH_USER: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'must be a POSIX user name' })
    .default('user'),
  /**
   * Legacy upstream password, tried only when a VM refuses the gateway key. No default: a
   * shared default password would open every such VM to anyone who knows it (DESIGN.md's
   * `clawdbot` belongs to images from before the per-VM key; set it explicitly for those).
   */
  VM_SSH_PASS: z.string().min(1).optional(),
  LOG_LEVEL: env.logLevel(),
  LOG_PRETTY: env.bool(false),
  /** A connection without channel traffic for this long is closed (0 = never). */
  IDLE_TIMEOUT_S: env.int(1800, 0),
  /** Time a client has to authenticate after connecting. */
  LOGIN_GRACE_S: env.int(60, 5),
  /** Failed logins per connection before the gateway disconnects. */
  MAX_AUTH_TRIES: env.int(6, 1),
  /** Failed logins per source address within AUTH_FAIL_WINDOW_S before every login from it is refused. */
  AUTH_FAIL_LIMIT_PER_IP: env.int(30, 1),
  /** Failed logins per user within AUTH_FAIL_WINDOW_S before every login as that user is refused. */
  AUTH_FAIL_LIMIT_PER_USER: env.int(10, 1),
  AUTH_FAIL_WINDOW_S: env.int(900, 1),
  /** How often an open connection marks its VM active at the orchestrator. */
  TOUCH_INTERVAL_S: env.int(60, 1),
  /** Upper bound for starting a stopped VM (the orchestrator's own readiness wait is inside it). */
  VM_START_TIMEOUT_MS: env.int(120_000, 1000),
  /** TCP connect plus SSH handshake to a VM's sshd. */
  UPSTREAM_CONNECT_TIMEOUT_MS: env.int(20_000, 500),
  /** Open connections, authenticated or not, beyond which new ones are dropped. */
  MAX_CONNECTIONS: env.int(2000, 1),
  /**
   * V8's old-generation growing factor as a percentage (`--heap-growing-percent`; 300 = the heap
   * may reach 4× its live size before a full GC, V8's own upper bound). Relaying allocates about
   * 2.5 MiB of short-lived buffers per MiB, which V8 counts against the old-generation limit until
   * a scavenge frees them; with its own, smaller factor a busy gateway falls into back-to-back full
   * GCs that double its CPU per MiB (bench/ssh/README.md). 0 leaves V8's heuristics alone.
   */
  GC_HEAP_GROWING_PERCENT: z.coerce.number().int().min(0).max(1000).default(300),
});

export type Config = z.infer<typeof configSchema>;

/** Parses the environment once; throws ConfigError listing every missing or malformed variable. */
export function loadConfig(environment: NodeJS.ProcessEnv): Config {
  return parseEnv(configSchema, environment);
}
