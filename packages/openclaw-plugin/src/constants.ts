/** Plugin id: the key of `plugins.entries.<id>` (kept from the community plugin this replaces). */
export const PLUGIN_ID = 'webhook-server';
/** Channel id: the key of `channels.<id>`. Not `wechat`/`weixin`/`wecom`, which OpenClaw's catalog owns. */
export const CHANNEL_ID = 'moltage';
export const CHANNEL_LABEL = 'WeChat';
export const DEFAULT_ACCOUNT_ID = 'default';
export const DEFAULT_PORT = 8789;
export const DEFAULT_HOST = '0.0.0.0';
export const WEBHOOK_PATH = '/webhook';
export const HEALTH_PATH = '/health';
/** Largest webhook body accepted; a WeChat text is at most a few KiB. */
export const MAX_BODY_BYTES = 256 * 1024;
