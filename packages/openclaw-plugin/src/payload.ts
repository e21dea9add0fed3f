import { randomUUID } from 'node:crypto';
import { type ChannelDefaults, isHttpUrl } from './config.js';
import { PayloadError } from './errors.js';

/** One user message, whichever payload shape it arrived in. */
export interface InboundMessage {
  messageId: string;
  openid: string;
  text: string;
  msgType: string;
  callbackUrl: string;
  callbackToken?: string;
  nickname?: string;
  /** Milliseconds since the epoch, when the sender said. */
  timestampMs?: number;
  /** `moltage`: the bridge's payload; `legacy`: the community webhook-server plugin's (`task`). */
  shape: 'moltage' | 'legacy';
}

const MAX_ID_CHARS = 128;
const MAX_TEXT_CHARS = 64 * 1024;
const MAX_TOKEN_CHARS = 512;
const MAX_URL_CHARS = 2048;
/** WeChat openids are base64url-like; anything else in a session key is refused. */
const OPENID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const MSG_TYPE_PATTERN = /^[a-z][a-z0-9_]{0,31}$/i;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requiredString(value: unknown, field: string, maxChars: number): string {
  if (value === undefined || value === null) throw new PayloadError(`${field} is required`);
  if (typeof value !== 'string') throw new PayloadError(`${field} must be a string`);
  if (value.trim() === '') throw new PayloadError(`${field} must not be empty`);
  if (value.length > maxChars) throw new PayloadError(`${field} is longer than ${maxChars} characters`);
  return value;
}

function optionalString(value: unknown, field: string, maxChars: number): string | undefined {
  if (value === undefined || value === null) return undefined;
  return requiredString(value, field, maxChars);
}

/** Message ids may arrive as strings or as WeChat's numeric MsgId. */
function idString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new PayloadError(`${field} must be a string`);
    return String(value);
  }
  return requiredString(value, field, MAX_ID_CHARS);
}

function openidOf(value: unknown, field: string): string {
  const openid = requiredString(value, field, MAX_ID_CHARS);
  if (!OPENID_PATTERN.test(openid)) {
    throw new PayloadError(`${field} may only contain letters, digits, '-' and '_'`);
  }
  return openid;
}

function msgTypeOf(value: unknown, field: string): string {
  if (value === undefined || value === null) return 'text';
  const msgType = requiredString(value, field, 32);
  if (!MSG_TYPE_PATTERN.test(msgType)) throw new PayloadError(`${field} is not a message type name`);
  return msgType.toLowerCase();
}

/**
 * The configured callbackUrl wins over the request's: whoever set up this OpenClaw knows how the
 * bridge is reached from where it runs, while the bridge only knows its own public address. In a
 * Moltage VM the orchestrator writes the guest's view of the bridge there (e.g. 10.0.1.1 for a
 * bridge on the host's loopback). The request's URL is still validated.
 */
function callbackUrlOf(value: unknown, field: string, defaults: ChannelDefaults): string {
  const url = optionalString(value, field, MAX_URL_CHARS);
  if (url !== undefined && !isHttpUrl(url))
    throw new PayloadError(`${field} must be an absolute http(s) URL`);
  if (defaults.callbackUrl) return defaults.callbackUrl;
  if (url !== undefined) return url;
  throw new PayloadError(`${field} is required (channels.moltage.config.callbackUrl is not set either)`);
}

function timestampOf(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new PayloadError(`${field} must be a number of seconds since the epoch`);
  }
  // WeChat's CreateTime is in seconds; accept milliseconds too.
  return value > 1e12 ? Math.round(value) : Math.round(value * 1000);
}

/**
 * Validates a webhook body and turns it into one InboundMessage. Accepts the bridge's payload
 * (`message_id`, `openid`, `text`, `msg_type`, `callback_url`, `callback_token?`) and the
 * community plugin's (`task`, `callback_url?`, `metadata.openid`, `metadata.msg_type?`, ...).
 * Throws a PayloadError whose message says what is wrong.
 */
export function parseWebhookPayload(body: unknown, defaults: ChannelDefaults = {}): InboundMessage {
  if (!isRecord(body)) throw new PayloadError('body must be a JSON object');
  const isMoltage = 'openid' in body || 'text' in body || 'message_id' in body;
  if (!isMoltage && !('task' in body)) {
    throw new PayloadError(
      'body must carry message_id, openid, text, msg_type and callback_url (or task and metadata.openid)',
    );
  }

  if (isMoltage) {
    const messageId = idString(body.message_id, 'message_id');
    if (messageId === undefined) throw new PayloadError('message_id is required');
    const openid = openidOf(body.openid, 'openid');
    const text = requiredString(body.text, 'text', MAX_TEXT_CHARS);
    if (body.msg_type === undefined || body.msg_type === null) throw new PayloadError('msg_type is required');
    const msgType = msgTypeOf(body.msg_type, 'msg_type');
    const callbackUrl = callbackUrlOf(body.callback_url, 'callback_url', defaults);
    const explicitToken = optionalString(body.callback_token, 'callback_token', MAX_TOKEN_CHARS);
    const callbackToken = explicitToken ?? defaults.callbackToken;
    const nickname = optionalString(body.nickname, 'nickname', MAX_ID_CHARS);
    const timestampMs = timestampOf(body.timestamp, 'timestamp');
    return {
      messageId,
      openid,
      text,
      msgType,
      callbackUrl,
      ...(callbackToken !== undefined ? { callbackToken } : {}),
      ...(nickname !== undefined ? { nickname } : {}),
      ...(timestampMs !== undefined ? { timestampMs } : {}),
      shape: 'moltage',
    };
  }

  const text = requiredString(body.task, 'task', MAX_TEXT_CHARS);
  if (body.metadata === undefined || body.metadata === null) {
    throw new PayloadError('metadata.openid is required');
  }
  if (!isRecord(body.metadata)) throw new PayloadError('metadata must be an object');
  const meta = body.metadata;
  const openid = openidOf(meta.openid, 'metadata.openid');
  const msgType = msgTypeOf(meta.msg_type, 'metadata.msg_type');
  const messageId = idString(meta.msg_id ?? meta.message_id, 'metadata.msg_id') ?? randomUUID();
  const callbackUrl = callbackUrlOf(body.callback_url, 'callback_url', defaults);
  const explicitToken = optionalString(body.callback_token, 'callback_token', MAX_TOKEN_CHARS);
  const callbackToken = explicitToken ?? defaults.callbackToken;
  const nickname = optionalString(meta.nickname, 'metadata.nickname', MAX_ID_CHARS);
  const timestampMs = timestampOf(meta.timestamp, 'metadata.timestamp');
  return {
    messageId,
    openid,
    text,
    msgType,
    callbackUrl,
    ...(callbackToken !== undefined ? { callbackToken } : {}),
    ...(nickname !== undefined ? { nickname } : {}),
    ...(timestampMs !== undefined ? { timestampMs } : {}),
    shape: 'legacy',
  };
}
