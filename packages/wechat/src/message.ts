import { WeChatError } from './errors.js';
import { parseXml } from './xml.js';

/** Fields every push carries. `raw` holds every element of the XML as text. */
export interface BaseMessage {
  toUserName: string;
  fromUserName: string;
  /** Seconds since the epoch, as WeChat sends it. */
  createTime: number;
  msgType: string;
  raw: Record<string, string>;
}

export interface TextMessage extends BaseMessage {
  msgType: 'text';
  content: string;
  /** 64-bit id, kept as a string. Empty when WeChat did not send one. */
  msgId: string;
}
export interface ImageMessage extends BaseMessage {
  msgType: 'image';
  picUrl: string;
  mediaId: string;
  msgId: string;
}
export interface VoiceMessage extends BaseMessage {
  msgType: 'voice';
  mediaId: string;
  format: string;
  /** Speech recognition result, when the account has it enabled. */
  recognition?: string;
  msgId: string;
}
export interface VideoMessage extends BaseMessage {
  msgType: 'video';
  mediaId: string;
  thumbMediaId: string;
  msgId: string;
}
export interface ShortVideoMessage extends BaseMessage {
  msgType: 'shortvideo';
  mediaId: string;
  thumbMediaId: string;
  msgId: string;
}
export interface LocationMessage extends BaseMessage {
  msgType: 'location';
  latitude: number;
  longitude: number;
  scale: number;
  label: string;
  msgId: string;
}
export interface LinkMessage extends BaseMessage {
  msgType: 'link';
  title: string;
  description: string;
  url: string;
  msgId: string;
}

export interface SubscribeEvent extends BaseMessage {
  msgType: 'event';
  event: 'subscribe';
  /** `qrscene_<scene>` when the user followed by scanning a parametric QR code. */
  eventKey?: string;
  /** The QR scene (eventKey without `qrscene_`). */
  scene?: string;
  ticket?: string;
}
export interface UnsubscribeEvent extends BaseMessage {
  msgType: 'event';
  event: 'unsubscribe';
}
export interface ScanEvent extends BaseMessage {
  msgType: 'event';
  event: 'SCAN';
  /** The QR scene value. */
  eventKey: string;
  ticket?: string;
}
export interface LocationEvent extends BaseMessage {
  msgType: 'event';
  event: 'LOCATION';
  latitude: number;
  longitude: number;
  precision: number;
}
export interface ClickEvent extends BaseMessage {
  msgType: 'event';
  event: 'CLICK';
  eventKey: string;
}
export interface ViewEvent extends BaseMessage {
  msgType: 'event';
  event: 'VIEW';
  /** The URL the menu item opened. */
  eventKey: string;
}

/**
 * Any push this library does not model. `msgType` is the literal `'unknown'` so that switching on
 * `msgType` narrows the known types; the type WeChat sent is in `originalMsgType` (and `raw.MsgType`).
 */
export interface UnknownMessage extends BaseMessage {
  msgType: 'unknown';
  originalMsgType: string;
  event?: string;
  msgId?: string;
}

export type WeChatEvent =
  | SubscribeEvent
  | UnsubscribeEvent
  | ScanEvent
  | LocationEvent
  | ClickEvent
  | ViewEvent;
export type WeChatMessage =
  | TextMessage
  | ImageMessage
  | VoiceMessage
  | VideoMessage
  | ShortVideoMessage
  | LocationMessage
  | LinkMessage
  | WeChatEvent
  | UnknownMessage;

function bad(message: string): WeChatError {
  return new WeChatError('WECHAT_BAD_XML', message);
}

function required(raw: Record<string, string>, name: string): string {
  const v = raw[name];
  if (v === undefined || v.trim() === '') throw bad(`missing required element <${name}>`);
  return v;
}

function str(raw: Record<string, string>, name: string): string {
  return raw[name] ?? '';
}

function opt(raw: Record<string, string>, name: string): string | undefined {
  const v = raw[name];
  return v === undefined || v === '' ? undefined : v;
}

const DECIMAL_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function num(raw: Record<string, string>, name: string, fallback?: number): number {
  const v = raw[name]?.trim();
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback;
    throw bad(`missing required element <${name}>`);
  }
  if (!DECIMAL_RE.test(v)) throw bad(`element <${name}> is not a number`);
  return Number(v);
}

/**
 * Parses a (decrypted) push into a typed message. Throws WECHAT_BAD_XML when the XML is
 * malformed or ToUserName, FromUserName, CreateTime or MsgType is missing or malformed.
 * Fields WeChat adds later are tolerated and kept in `raw`.
 */
export function parseMessage(xml: string): WeChatMessage {
  const raw = parseXml(xml);
  const createTimeText = required(raw, 'CreateTime').trim();
  if (!/^\d{1,15}$/.test(createTimeText)) throw bad('element <CreateTime> is not a timestamp');
  const base = {
    toUserName: required(raw, 'ToUserName'),
    fromUserName: required(raw, 'FromUserName'),
    createTime: Number(createTimeText),
    raw,
  };
  const msgType = required(raw, 'MsgType').trim();
  const msgId = str(raw, 'MsgId').trim();

  switch (msgType) {
    case 'text':
      return { ...base, msgType, content: str(raw, 'Content'), msgId };
    case 'image':
      return { ...base, msgType, picUrl: str(raw, 'PicUrl'), mediaId: str(raw, 'MediaId'), msgId };
    case 'voice': {
      const recognition = opt(raw, 'Recognition');
      return {
        ...base,
        msgType,
        mediaId: str(raw, 'MediaId'),
        format: str(raw, 'Format'),
        ...(recognition === undefined ? {} : { recognition }),
        msgId,
      };
    }
    case 'video':
    case 'shortvideo':
      return {
        ...base,
        msgType,
        mediaId: str(raw, 'MediaId'),
        thumbMediaId: str(raw, 'ThumbMediaId'),
        msgId,
      };
    case 'location':
      return {
        ...base,
        msgType,
        latitude: num(raw, 'Location_X'),
        longitude: num(raw, 'Location_Y'),
        scale: num(raw, 'Scale', 0),
        label: str(raw, 'Label'),
        msgId,
      };
    case 'link':
      return {
        ...base,
        msgType,
        title: str(raw, 'Title'),
        description: str(raw, 'Description'),
        url: str(raw, 'Url'),
        msgId,
      };
    case 'event':
      return parseEvent(base, raw, msgId);
    default:
      return { ...base, msgType: 'unknown', originalMsgType: msgType, ...(msgId ? { msgId } : {}) };
  }
}

type Base = Omit<BaseMessage, 'msgType'>;

function parseEvent(base: Base, raw: Record<string, string>, msgId: string): WeChatMessage {
  const event = required(raw, 'Event').trim();
  const msgType = 'event' as const;
  // WeChat documents lowercase subscribe/unsubscribe and uppercase SCAN/LOCATION/CLICK/VIEW, but
  // case has varied between products; match case-insensitively and report the canonical name.
  switch (event.toLowerCase()) {
    case 'subscribe': {
      const eventKey = opt(raw, 'EventKey');
      const ticket = opt(raw, 'Ticket');
      const scene = eventKey?.startsWith('qrscene_') ? eventKey.slice('qrscene_'.length) : undefined;
      return {
        ...base,
        msgType,
        event: 'subscribe',
        ...(eventKey === undefined ? {} : { eventKey }),
        ...(scene === undefined ? {} : { scene }),
        ...(ticket === undefined ? {} : { ticket }),
      };
    }
    case 'unsubscribe':
      return { ...base, msgType, event: 'unsubscribe' };
    case 'scan': {
      const ticket = opt(raw, 'Ticket');
      return {
        ...base,
        msgType,
        event: 'SCAN',
        eventKey: str(raw, 'EventKey'),
        ...(ticket === undefined ? {} : { ticket }),
      };
    }
    case 'location':
      return {
        ...base,
        msgType,
        event: 'LOCATION',
        latitude: num(raw, 'Latitude'),
        longitude: num(raw, 'Longitude'),
        precision: num(raw, 'Precision', 0),
      };
    case 'click':
      return { ...base, msgType, event: 'CLICK', eventKey: str(raw, 'EventKey') };
    case 'view':
      return { ...base, msgType, event: 'VIEW', eventKey: str(raw, 'EventKey') };
    default:
      return { ...base, msgType: 'unknown', originalMsgType: 'event', event, ...(msgId ? { msgId } : {}) };
  }
}

/**
 * The key to deduplicate WeChat's retries of one push: the MsgId when there is one, else
 * `FromUserName:CreateTime:<event or msgType>` (WeChat's documented rule for events).
 */
export function dedupKey(msg: WeChatMessage): string {
  const msgId = 'msgId' in msg ? msg.msgId : undefined;
  if (msgId) return msgId;
  const kind =
    'event' in msg && msg.event ? msg.event : msg.msgType === 'unknown' ? msg.originalMsgType : msg.msgType;
  return `${msg.fromUserName}:${msg.createTime}:${kind}`;
}
