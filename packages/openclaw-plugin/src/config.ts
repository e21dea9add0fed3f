import { CHANNEL_ID, DEFAULT_HOST, DEFAULT_PORT } from './constants.js';
import { ConfigError } from './errors.js';

/** Regions the ngrok agent can be pinned to (ngrok picks the closest one by default). */
export const NGROK_REGIONS = ['us', 'us-cal-1', 'eu', 'ap', 'au', 'sa', 'jp', 'in'] as const;
export type NgrokRegion = (typeof NGROK_REGIONS)[number];

/** `plugins.entries.webhook-server.config`, defaults applied. */
export interface WebhookServerConfig {
  port: number;
  host: string;
  authToken: string;
  useNgrok: boolean;
  /** From the config, else NGROK_AUTHTOKEN of the gateway's environment. */
  ngrokAuthToken?: string;
  /** Local port the tunnel forwards to; defaults to `port`. */
  ngrokPort: number;
  ngrokRegion?: NgrokRegion;
  ngrokServerAddr?: string;
}

/** Every key `plugins.entries.webhook-server.config` accepts (the manifest test keeps this in sync). */
export const WEBHOOK_SERVER_CONFIG_KEYS = [
  'port',
  'host',
  'authToken',
  'useNgrok',
  'ngrokAuthToken',
  'ngrokPort',
  'ngrokRegion',
  'ngrokServerAddr',
] as const;

/** `channels.moltage.config`: where replies go when a webhook request does not say. */
export interface ChannelDefaults {
  callbackUrl?: string;
  callbackToken?: string;
}

export const CHANNEL_CONFIG_KEYS = ['callbackUrl', 'callbackToken'] as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65_535;
}

/** True for an absolute http(s) URL. */
export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * Validates `plugins.entries.webhook-server.config` and applies defaults.
 * Throws a ConfigError naming every bad field.
 */
export function parseWebhookServerConfig(
  raw: unknown,
  env: NodeJS.ProcessEnv = process.env,
): WebhookServerConfig {
  const issues: string[] = [];
  const path = 'plugins.entries.webhook-server.config';
  if (raw !== undefined && raw !== null && !isRecord(raw)) {
    throw new ConfigError([`${path} must be an object`]);
  }
  const cfg = (raw ?? {}) as Record<string, unknown>;
  const known = new Set<string>(WEBHOOK_SERVER_CONFIG_KEYS);
  for (const key of Object.keys(cfg)) {
    if (!known.has(key)) issues.push(`${path}.${key} is not a known option`);
  }

  const port = cfg.port ?? DEFAULT_PORT;
  if (!isPort(port)) issues.push(`${path}.port must be an integer from 1 to 65535`);

  const host = cfg.host ?? DEFAULT_HOST;
  if (typeof host !== 'string' || host.trim() === '') issues.push(`${path}.host must be a non-empty string`);

  const authToken = cfg.authToken;
  if (authToken === undefined || authToken === '') {
    issues.push(`${path}.authToken is required (the bearer token the bridge sends)`);
  } else if (typeof authToken !== 'string' || authToken.length < 8 || authToken.length > 512) {
    issues.push(`${path}.authToken must be a string of 8 to 512 characters`);
  }

  const useNgrok = cfg.useNgrok ?? false;
  if (typeof useNgrok !== 'boolean') issues.push(`${path}.useNgrok must be true or false`);

  const ngrokAuthTokenRaw = cfg.ngrokAuthToken;
  if (
    ngrokAuthTokenRaw !== undefined &&
    (typeof ngrokAuthTokenRaw !== 'string' || ngrokAuthTokenRaw === '')
  ) {
    issues.push(`${path}.ngrokAuthToken must be a non-empty string`);
  }

  const ngrokPort = cfg.ngrokPort ?? port;
  if (cfg.ngrokPort !== undefined && !isPort(cfg.ngrokPort)) {
    issues.push(`${path}.ngrokPort must be an integer from 1 to 65535`);
  }

  const ngrokRegion = cfg.ngrokRegion;
  if (ngrokRegion !== undefined && !(NGROK_REGIONS as readonly unknown[]).includes(ngrokRegion)) {
    issues.push(`${path}.ngrokRegion must be one of ${NGROK_REGIONS.join(', ')}`);
  }

  const ngrokServerAddr = cfg.ngrokServerAddr;
  if (ngrokServerAddr !== undefined && (typeof ngrokServerAddr !== 'string' || ngrokServerAddr === '')) {
    issues.push(`${path}.ngrokServerAddr must be a non-empty host:port string`);
  }

  if (issues.length > 0) throw new ConfigError(issues);

  const envToken = env.NGROK_AUTHTOKEN?.trim();
  const ngrokAuthToken = (ngrokAuthTokenRaw as string | undefined) ?? (envToken ? envToken : undefined);
  return {
    port: port as number,
    host: (host as string).trim(),
    authToken: authToken as string,
    useNgrok: useNgrok as boolean,
    ...(ngrokAuthToken !== undefined ? { ngrokAuthToken } : {}),
    ngrokPort: ngrokPort as number,
    ...(ngrokRegion !== undefined ? { ngrokRegion: ngrokRegion as NgrokRegion } : {}),
    ...(ngrokServerAddr !== undefined ? { ngrokServerAddr: ngrokServerAddr as string } : {}),
  };
}

/**
 * Reads `channels.moltage.config` from an OpenClaw config object. Values that are not valid
 * (a callbackUrl that is not http(s)) are left out and reported through `onIssue`.
 */
export function readChannelDefaults(cfg: unknown, onIssue?: (issue: string) => void): ChannelDefaults {
  if (!isRecord(cfg)) return {};
  const channels = cfg.channels;
  if (!isRecord(channels)) return {};
  const section = channels[CHANNEL_ID];
  if (!isRecord(section)) return {};
  const inner = section.config;
  if (!isRecord(inner)) return {};
  const out: ChannelDefaults = {};
  const url = inner.callbackUrl;
  if (typeof url === 'string' && url !== '') {
    if (isHttpUrl(url)) out.callbackUrl = url;
    else onIssue?.(`channels.${CHANNEL_ID}.config.callbackUrl is not an http(s) URL; ignored`);
  }
  const token = inner.callbackToken;
  if (typeof token === 'string' && token !== '') out.callbackToken = token;
  return out;
}

/** False only when `channels.moltage.enabled` is explicitly false. */
export function isChannelEnabled(cfg: unknown): boolean {
  if (!isRecord(cfg) || !isRecord(cfg.channels)) return true;
  const section = cfg.channels[CHANNEL_ID];
  return !(isRecord(section) && section.enabled === false);
}
