import { z } from 'zod';

/**
 * What a fake user does, as the JSON API and the chat page describe it. Each becomes one push
 * to the bridge in WeChat's XML. Following and unfollowing have their own endpoints; they
 * appear here as `subscribe`/`unsubscribe` events.
 */
const text = z.object({
  type: z.literal('text'),
  content: z.string().min(1, 'content must not be empty').max(20_000),
});
const image = z.object({
  type: z.literal('image'),
  picUrl: z.url().optional(),
  mediaId: z.string().min(1).max(128).optional(),
});
const voice = z.object({
  type: z.literal('voice'),
  mediaId: z.string().min(1).max(128).optional(),
  format: z.enum(['amr', 'speex']).optional(),
  /** Speech recognition result; omit it to push a voice message without one. */
  recognition: z.string().max(20_000).optional(),
});
const video = z.object({
  type: z.enum(['video', 'shortvideo']),
  mediaId: z.string().min(1).max(128).optional(),
  thumbMediaId: z.string().min(1).max(128).optional(),
});
const location = z.object({
  type: z.literal('location'),
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  scale: z.number().int().min(1).max(30).optional(),
  label: z.string().max(500).optional(),
});
const link = z.object({
  type: z.literal('link'),
  title: z.string().min(1).max(500),
  description: z.string().max(2000).optional(),
  url: z.url(),
});
const click = z.object({
  type: z.literal('event'),
  event: z.literal('CLICK'),
  eventKey: z.string().min(1).max(128),
});
const view = z.object({
  type: z.literal('event'),
  event: z.literal('VIEW'),
  eventKey: z.url(),
  menuId: z.string().max(64).optional(),
});
const scan = z.object({
  type: z.literal('event'),
  event: z.literal('SCAN'),
  eventKey: z.string().min(1).max(64),
  ticket: z.string().max(256).optional(),
});
const locationEvent = z.object({
  type: z.literal('event'),
  event: z.literal('LOCATION'),
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  precision: z.number().min(0).optional(),
});

const eventAction = z.discriminatedUnion('event', [click, view, scan, locationEvent]);

/** The message kinds a user can send through `POST /sim/users/:openid/messages`. */
export const userMessageSchema = z.union([
  z.discriminatedUnion('type', [text, image, voice, video, location, link]),
  eventAction,
]);
export type UserMessage = z.infer<typeof userMessageSchema>;

export type SubscribeAction = { type: 'event'; event: 'subscribe'; qrscene?: string; ticket?: string };
export type UnsubscribeAction = { type: 'event'; event: 'unsubscribe' };
export type UserAction = UserMessage | SubscribeAction | UnsubscribeAction;

export interface InboundContext {
  /** The account's original id (gh_…). */
  toUserName: string;
  /** The user's openid. */
  fromUserName: string;
  /** Seconds since the epoch. */
  createTime: number;
  /** A fresh 64-bit MsgId (decimal string), used by messages but not by events. */
  msgId: string;
  /** A fresh media id, for media messages that did not name one. */
  mediaId: string;
  /** Base URL under which the simulator serves media (`<base>/sim/media/<id>`). */
  mediaBaseUrl: string;
}

/** Field values for {@link buildXml}: strings become CDATA, numbers stay bare. */
export type PushFields = Record<string, string | number>;

export interface Inbound {
  fields: PushFields;
  /** MsgId for messages; null for events. */
  msgId: string | null;
  /** What WeChat's retries share and what sends are counted against: MsgId, or `FromUserName:CreateTime` for events. */
  ref: string;
  /** `text`, `image`, …, or `event:<Event>`. */
  kind: string;
  /** Whether this action opens a customer-service window (see service-window.ts). */
  opensWindow: boolean;
  /** One line for the chat page. */
  summary: string;
}

/**
 * Builds the push fields for an action, in the order WeChat documents them. Messages carry
 * MsgId; events do not. Actions that open the customer-service window: every message, and the
 * subscribe, SCAN and CLICK events (not VIEW, LOCATION or unsubscribe).
 */
export function buildInbound(action: UserAction, ctx: InboundContext): Inbound {
  const head = { ToUserName: ctx.toUserName, FromUserName: ctx.fromUserName, CreateTime: ctx.createTime };
  const message = (kind: string, body: PushFields, summary: string): Inbound => ({
    fields: { ...head, MsgType: kind, ...body, MsgId: ctx.msgId },
    msgId: ctx.msgId,
    ref: ctx.msgId,
    kind,
    opensWindow: true,
    summary,
  });
  const event = (name: string, body: PushFields, opensWindow: boolean, summary: string): Inbound => ({
    fields: { ...head, MsgType: 'event', Event: name, ...body },
    msgId: null,
    ref: `${ctx.fromUserName}:${ctx.createTime}`,
    kind: `event:${name}`,
    opensWindow,
    summary,
  });
  const mediaUrl = (id: string) =>
    `${ctx.mediaBaseUrl.replace(/\/+$/, '')}/sim/media/${encodeURIComponent(id)}`;

  switch (action.type) {
    case 'text':
      return message('text', { Content: action.content }, action.content);
    case 'image': {
      const mediaId = action.mediaId ?? ctx.mediaId;
      return message(
        'image',
        { PicUrl: action.picUrl ?? mediaUrl(mediaId), MediaId: mediaId },
        '[图片 image]',
      );
    }
    case 'voice': {
      const body: PushFields = { MediaId: action.mediaId ?? ctx.mediaId, Format: action.format ?? 'amr' };
      if (action.recognition !== undefined) body['Recognition'] = action.recognition;
      const summary =
        action.recognition !== undefined ? `[语音 voice] ${action.recognition}` : '[语音 voice]';
      return message('voice', body, summary);
    }
    case 'video':
    case 'shortvideo':
      return message(
        action.type,
        {
          MediaId: action.mediaId ?? ctx.mediaId,
          ThumbMediaId: action.thumbMediaId ?? `${ctx.mediaId}_thumb`,
        },
        action.type === 'video' ? '[视频 video]' : '[小视频 short video]',
      );
    case 'location': {
      const label = action.label ?? '';
      return message(
        'location',
        {
          Location_X: action.latitude,
          Location_Y: action.longitude,
          Scale: action.scale ?? 15,
          Label: label,
        },
        `[位置 location] ${label ? `${label} ` : ''}(${action.latitude}, ${action.longitude})`,
      );
    }
    case 'link':
      return message(
        'link',
        { Title: action.title, Description: action.description ?? '', Url: action.url },
        `[链接 link] ${action.title}`,
      );
    case 'event':
      switch (action.event) {
        case 'subscribe': {
          const body: PushFields = {
            EventKey: action.qrscene !== undefined ? `qrscene_${action.qrscene}` : '',
          };
          if (action.qrscene !== undefined) body['Ticket'] = action.ticket ?? `sim_ticket_${action.qrscene}`;
          const scene = action.qrscene !== undefined ? ` (qrscene ${action.qrscene})` : '';
          return event('subscribe', body, true, `[关注 follow]${scene}`);
        }
        case 'unsubscribe':
          return event('unsubscribe', { EventKey: '' }, false, '[取消关注 unfollow]');
        case 'CLICK':
          return event('CLICK', { EventKey: action.eventKey }, true, `[菜单 menu] ${action.eventKey}`);
        case 'VIEW': {
          const body: PushFields = { EventKey: action.eventKey };
          if (action.menuId !== undefined) body['MenuId'] = action.menuId;
          return event('VIEW', body, false, `[菜单链接 menu link] ${action.eventKey}`);
        }
        case 'SCAN':
          return event(
            'SCAN',
            { EventKey: action.eventKey, Ticket: action.ticket ?? `sim_ticket_${action.eventKey}` },
            true,
            `[扫码 scan] ${action.eventKey}`,
          );
        case 'LOCATION':
          return event(
            'LOCATION',
            { Latitude: action.latitude, Longitude: action.longitude, Precision: action.precision ?? 65 },
            false,
            `[上报位置 location report] (${action.latitude}, ${action.longitude})`,
          );
      }
  }
}

/** WeChat writes MsgId bare, and it does not fit a JS number: turn the CDATA form back into digits. */
export function bareMsgId(xml: string): string {
  return xml.replace(/<MsgId><!\[CDATA\[(\d+)\]\]><\/MsgId>/g, '<MsgId>$1</MsgId>');
}

/**
 * 64-bit MsgIds above 2^53 (as WeChat's are), strictly increasing. `start` must be a decimal
 * string; `step` returns a positive increment.
 */
export class MsgIdSequence {
  #next: bigint;
  constructor(
    start: string,
    private readonly step: () => number,
  ) {
    this.#next = BigInt(start);
  }
  next(): string {
    this.#next += BigInt(Math.max(1, Math.floor(this.step())));
    return this.#next.toString();
  }
}
