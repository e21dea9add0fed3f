/**
 * Validation of `POST /cgi-bin/message/custom/send` bodies, with the errcodes WeChat gives.
 * Which user the message goes to and whether the account may message them are decided
 * elsewhere (users, service-window.ts).
 */

/** WeChat: a customer-service text is at most 2048 bytes of UTF-8. */
export const MAX_TEXT_BYTES = 2048;

export const CUSTOM_MSG_TYPES = [
  'text',
  'image',
  'voice',
  'video',
  'music',
  'news',
  'mpnews',
  'mpnewsarticle',
  'msgmenu',
  'wxcard',
  'miniprogrampage',
] as const;
export type CustomMsgType = (typeof CUSTOM_MSG_TYPES)[number];

export interface CustomMessage {
  touser: string;
  msgtype: CustomMsgType;
  /** The object under the `msgtype` key, as sent. */
  payload: Record<string, unknown>;
  /** `customservice.kf_account` when the caller named one. */
  kfAccount?: string;
  /** What the user sees, as one string (the text itself for `text`). */
  preview: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errcode: number };

/** Parses a JSON body as WeChat does: nothing → 44002, not a JSON object → 47001. */
export function parseJsonBody(raw: string | undefined): ParseResult<Record<string, unknown>> {
  if (raw === undefined || raw.trim() === '') return { ok: false, errcode: 44002 };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { ok: false, errcode: 47001 };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return { ok: false, errcode: 47001 };
  return { ok: true, value: value as Record<string, unknown> };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function nonEmpty(v: unknown): v is string {
  return typeof v === 'string' && v.trim() !== '';
}

function isCustomMsgType(v: unknown): v is CustomMsgType {
  return typeof v === 'string' && (CUSTOM_MSG_TYPES as readonly string[]).includes(v);
}

/** The `touser` of a parsed body, or null when it is missing or not a string. */
export function touserOf(body: Record<string, unknown>): string | null {
  return typeof body['touser'] === 'string' && body['touser'] !== '' ? body['touser'] : null;
}

/**
 * Checks the message itself: 40008 unknown msgtype, 44004 empty text, 45002 text over 2048
 * bytes, 40007 missing media_id, 47001 a payload of the wrong shape.
 */
export function validateCustomMessage(
  body: Record<string, unknown>,
  byteLength: (s: string) => number,
): ParseResult<CustomMessage> {
  const touser = touserOf(body);
  if (touser === null) return { ok: false, errcode: 40003 };
  const msgtype = body['msgtype'];
  if (!isCustomMsgType(msgtype)) return { ok: false, errcode: 40008 };
  const payload = body[msgtype];
  if (payload !== undefined && !isObject(payload)) return { ok: false, errcode: 47001 };
  const p = payload ?? {};
  const kf = isObject(body['customservice']) ? body['customservice']['kf_account'] : undefined;
  const done = (preview: string): ParseResult<CustomMessage> => ({
    ok: true,
    value: { touser, msgtype, payload: p, ...(typeof kf === 'string' ? { kfAccount: kf } : {}), preview },
  });

  switch (msgtype) {
    case 'text': {
      const content = p['content'];
      if (content !== undefined && typeof content !== 'string') return { ok: false, errcode: 47001 };
      if (content === undefined || content === '') return { ok: false, errcode: 44004 };
      if (byteLength(content) > MAX_TEXT_BYTES) return { ok: false, errcode: 45002 };
      return done(content);
    }
    case 'image':
    case 'voice':
    case 'mpnews':
      if (!nonEmpty(p['media_id'])) return { ok: false, errcode: 40007 };
      return done(`[${msgtype}] ${p['media_id']}`);
    case 'video':
      if (!nonEmpty(p['media_id'])) return { ok: false, errcode: 40007 };
      return done(`[video] ${typeof p['title'] === 'string' ? p['title'] : p['media_id']}`);
    case 'music':
      if (!nonEmpty(p['thumb_media_id'])) return { ok: false, errcode: 40007 };
      return done(`[music] ${typeof p['title'] === 'string' ? p['title'] : ''}`.trimEnd());
    case 'news': {
      const articles = p['articles'];
      if (!Array.isArray(articles) || articles.length === 0 || !articles.every(isObject)) {
        return { ok: false, errcode: 47001 };
      }
      const first = articles[0] as Record<string, unknown>;
      return done(`[news] ${typeof first['title'] === 'string' ? first['title'] : ''}`.trimEnd());
    }
    case 'mpnewsarticle':
      if (!nonEmpty(p['article_id'])) return { ok: false, errcode: 47001 };
      return done(`[mpnewsarticle] ${p['article_id']}`);
    case 'msgmenu': {
      const list = p['list'];
      if (!Array.isArray(list) || list.length === 0 || !list.every(isObject))
        return { ok: false, errcode: 47001 };
      const head = typeof p['head_content'] === 'string' ? p['head_content'] : '';
      const items = list.map((i) => `• ${typeof i['content'] === 'string' ? i['content'] : ''}`);
      const tail = typeof p['tail_content'] === 'string' ? p['tail_content'] : '';
      return done([head, ...items, tail].filter((s) => s !== '').join('\n'));
    }
    case 'wxcard':
      if (!nonEmpty(p['card_id'])) return { ok: false, errcode: 47001 };
      return done(`[wxcard] ${p['card_id']}`);
    case 'miniprogrampage':
      if (!nonEmpty(p['appid']) || !nonEmpty(p['thumb_media_id'])) return { ok: false, errcode: 47001 };
      return done(`[miniprogram] ${typeof p['title'] === 'string' ? p['title'] : p['appid']}`);
  }
}

export type TypingCommand = 'Typing' | 'CancelTyping';

/** Parses a typing body: `{touser, command: 'Typing' | 'CancelTyping'}`; 45072 on another command. */
export function validateTyping(
  body: Record<string, unknown>,
): ParseResult<{ touser: string; command: TypingCommand }> {
  const touser = touserOf(body);
  if (touser === null) return { ok: false, errcode: 40003 };
  const command = body['command'];
  if (command !== 'Typing' && command !== 'CancelTyping') return { ok: false, errcode: 45072 };
  return { ok: true, value: { touser, command } };
}
