import type { WeChatMessage } from '@moltage/wechat';
import { displayUrl } from './address-policy.js';
import { parseCommand } from './commands.js';
import { routeMessage } from './route-message.js';

/**
 * The console's view of messages (README → Console), pure: what one push became — queued,
 * processed, handed to the agent, answered — built from the console log (`console:messages`), the
 * send ledgers (`ledger:<entry>`), the users' inboxes and the agent waits. No I/O here.
 */

/** Characters of a message or reply kept for the console. */
export const PREVIEW_CHARS = 120;

/** One line of `console:messages`. */
export type JournalEvent =
  | {
      t: 'push';
      /** Stream id (time-ordered). */
      id: string;
      at: number;
      openid: string;
      /** Queue entry id (`m:<MsgId>` or `m:<FromUserName>:<CreateTime>:<Event>`). */
      eid: string;
      /** `text`, `image`, …, or `event:<Event>`. */
      kind: string;
      preview: string;
      route: MessageRoute;
      /** A retry WeChat sent again, recognised and dropped. */
      duplicate: boolean;
    }
  | {
      t: 'reply';
      id: string;
      at: number;
      openid: string;
      /** Queue entry id of the reply (`r:…`). */
      eid: string;
      /** The entry id of the user message it answers, when the agent named it. */
      replyTo: string | null;
      ok: boolean;
      preview: string;
      /** Customer-service messages the whole reply needs (before the 5-message budget). */
      need: number;
      duplicate: boolean;
    };

function clip(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  const chars = Array.from(flat);
  return chars.length > PREVIEW_CHARS ? `${chars.slice(0, PREVIEW_CHARS - 1).join('')}…` : flat;
}

/** How the bridge handles a push: a command it answers itself, the agent, or an event. */
export type MessageRoute = 'command' | 'agent' | 'event';

/**
 * A short, secret-free summary of a push: `bind <url> <token>` keeps the URL without its query
 * and hides the token.
 */
export function pushSummary(msg: WeChatMessage): { kind: string; preview: string; route: MessageRoute } {
  const r = routeMessage(msg).kind;
  const route: MessageRoute =
    r === 'agent' ? 'agent' : r === 'command' || r === 'answer' ? 'command' : 'event';
  return { ...describe(msg), route };
}

function describe(msg: WeChatMessage): { kind: string; preview: string } {
  switch (msg.msgType) {
    case 'text': {
      const cmd = parseCommand(msg.content);
      if (cmd?.name === 'bind') return { kind: 'text', preview: clip(`bind ${displayUrl(cmd.url)} ••••••`) };
      if (cmd?.name === 'bind-usage') return { kind: 'text', preview: 'bind ••••••' };
      return { kind: 'text', preview: clip(msg.content) };
    }
    case 'voice':
      return { kind: 'voice', preview: clip(msg.recognition ? `🎤 ${msg.recognition}` : '🎤') };
    case 'image':
      return { kind: 'image', preview: '[image 图片]' };
    case 'link':
      return { kind: 'link', preview: clip(`[link 链接] ${msg.title}`) };
    case 'location':
      return { kind: 'location', preview: clip(`[location 位置] ${msg.label}`) };
    case 'video':
    case 'shortvideo':
      return { kind: msg.msgType, preview: '[video 视频]' };
    case 'event': {
      const key = 'eventKey' in msg && msg.eventKey ? ` ${msg.eventKey}` : '';
      const name = EVENT_NAMES[msg.event] ?? msg.event;
      return { kind: `event:${msg.event}`, preview: clip(`${name}${key}`) };
    }
    case 'unknown':
      return { kind: msg.originalMsgType, preview: `[${msg.originalMsgType}]` };
  }
}

const EVENT_NAMES: Record<string, string> = {
  subscribe: '关注 follow',
  unsubscribe: '取消关注 unfollow',
  CLICK: '菜单 menu',
  VIEW: '菜单链接 menu link',
  SCAN: '扫码 scan',
  LOCATION: '上报位置 location',
};

export function replyPreview(text: string): string {
  return clip(text);
}

/** What one reply slot of the send ledger says (`part:<slot>:<n>`, `plan:<slot>`, …). */
export interface SlotView {
  slot: string;
  /** Customer-service messages planned for this slot. */
  parts: number;
  sent: number;
  outcome: 'sent' | 'sending' | 'failed' | 'no_budget';
  /** WeChat's errcode when a message was refused (45015, 45047, …). */
  errcode: number | null;
  /** Fewer messages than the whole text needed: the rest is on a reply page (or dropped). */
  cut: boolean;
}

/** The slots of one ledger hash, in the order the processor uses them. */
export function parseLedger(fields: Record<string, string>, need?: number): SlotView[] {
  const slots = new Map<
    string,
    { states: Map<number, string>; done: boolean; reserved?: number; plan?: number }
  >();
  const slot = (name: string) => {
    let s = slots.get(name);
    if (!s) {
      s = { states: new Map(), done: false };
      slots.set(name, s);
    }
    return s;
  };
  for (const [field, value] of Object.entries(fields)) {
    const part = /^part:([^:]+):(\d+)$/.exec(field);
    if (part) {
      slot(part[1] as string).states.set(Number(part[2]), value);
      continue;
    }
    const m = /^(done|reserved|plan):([^:]+)$/.exec(field);
    if (!m) continue;
    const s = slot(m[2] as string);
    if (m[1] === 'done') s.done = true;
    else if (m[1] === 'reserved') s.reserved = Number(value);
    else {
      try {
        const plan = JSON.parse(value) as unknown;
        if (Array.isArray(plan)) s.plan = plan.length;
      } catch {
        // A plan we cannot read: count the parts instead.
      }
    }
  }
  const out: SlotView[] = [];
  for (const [name, s] of slots) {
    const parts = s.plan ?? (s.states.size ? Math.max(...s.states.keys()) + 1 : 0);
    const states = [...s.states.values()];
    const sent = states.filter((v) => v === 'sent').length;
    const failed = states.find((v) => v.startsWith('failed:'));
    let outcome: SlotView['outcome'];
    if (failed) outcome = 'failed';
    else if (s.done && parts === 0) outcome = s.reserved === 0 ? 'no_budget' : 'sent';
    else if (s.done) outcome = 'sent';
    else if (s.reserved === 0) outcome = 'no_budget';
    else outcome = 'sending';
    const errcode = failed ? Number(failed.slice('failed:'.length)) : null;
    out.push({
      slot: name,
      parts,
      sent,
      outcome,
      errcode: Number.isFinite(errcode) ? errcode : null,
      cut: need !== undefined && (s.done || s.plan !== undefined) && parts < need,
    });
  }
  return out.sort((a, b) => SLOT_ORDER.indexOf(a.slot) - SLOT_ORDER.indexOf(b.slot));
}

const SLOT_ORDER = ['coldstart', 'answer', 'error', 'reply', 'notice', 'giveup'];

export type MessageStatus =
  | 'queued'
  | 'processing'
  | 'with_agent'
  | 'replying'
  | 'answered'
  | 'replied'
  | 'agent_error'
  | 'timed_out'
  | 'send_failed'
  | 'gave_up'
  | 'done'
  | 'expired';

export interface ReplyView {
  eid: string;
  at: number;
  preview: string;
  ok: boolean;
  /** Linked by time because the agent did not name the message it answers. */
  guessed: boolean;
  sends: SlotView[];
}

export interface MessageRow {
  eid: string;
  openid: string;
  at: number;
  kind: string;
  preview: string;
  route: MessageRoute;
  /** WeChat retries of this push that were recognised and dropped. */
  retries: number;
  status: MessageStatus;
  /** Processing attempts so far (from the ledger). */
  attempts: number;
  /** Messages sent for the push itself (command answers, notices). */
  sends: SlotView[];
  replies: ReplyView[];
}

/** What the console read besides the log, keyed by entry id. */
export interface MessageFacts {
  /** `ledger:<eid>` hashes (empty object when missing). */
  ledgers: Map<string, Record<string, string>>;
  /** Entry ids still in a user's inbox (queued or being processed). */
  inInbox: Set<string>;
  /** Entry ids awaiting an agent reply (`waits:<openid>`). */
  waiting: Set<string>;
}

/** The ledger keys to read for the rows {@link buildMessageRows} will show. */
export function entriesToRead(events: JournalEvent[], limit: number): { eids: string[]; openids: string[] } {
  const pushes = latestPushes(events, limit);
  const eids = new Set<string>();
  const openids = new Set<string>();
  for (const p of pushes) {
    eids.add(p.eid);
    eids.add(`timeout:${p.eid}`);
    openids.add(p.openid);
  }
  for (const e of events) if (e.t === 'reply' && !e.duplicate && openids.has(e.openid)) eids.add(e.eid);
  return { eids: [...eids], openids: [...openids] };
}

function latestPushes(events: JournalEvent[], limit: number) {
  const seen = new Set<string>();
  const out: Extract<JournalEvent, { t: 'push' }>[] = [];
  const sorted = [...events].sort((a, b) => compareIds(b.id, a.id));
  for (const e of sorted) {
    if (e.t !== 'push' || seen.has(e.eid)) continue;
    seen.add(e.eid);
    out.push(e);
    if (out.length >= limit) break;
  }
  return out;
}

/** Stream ids `<ms>-<seq>` in time order. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

/**
 * The newest `limit` user messages, newest first, each with its retries, processing state, the
 * messages sent for it and the agent replies (linked by `message_id`, or else by time).
 */
export function buildMessageRows(events: JournalEvent[], facts: MessageFacts, limit: number): MessageRow[] {
  const chronological = [...events].sort((a, b) => compareIds(a.id, b.id));
  const pushes = new Map<string, Extract<JournalEvent, { t: 'push' }>>();
  const retries = new Map<string, number>();
  const replies = new Map<string, ReplyView[]>();
  const lastPushOf = new Map<string, string>();
  for (const e of chronological) {
    if (e.t === 'push') {
      if (pushes.has(e.eid) || e.duplicate) {
        retries.set(e.eid, (retries.get(e.eid) ?? 0) + 1);
        if (!pushes.has(e.eid)) pushes.set(e.eid, { ...e, duplicate: false });
        continue;
      }
      pushes.set(e.eid, e);
      if (e.route === 'agent') lastPushOf.set(e.openid, e.eid);
      continue;
    }
    if (e.duplicate) continue;
    const target = e.replyTo && pushes.has(e.replyTo) ? e.replyTo : (lastPushOf.get(e.openid) ?? null);
    if (!target) continue;
    const list = replies.get(target) ?? [];
    list.push({
      eid: e.eid,
      at: e.at,
      preview: e.preview,
      ok: e.ok,
      guessed: !e.replyTo,
      sends: parseLedger(facts.ledgers.get(e.eid) ?? {}, e.need),
    });
    replies.set(target, list);
  }

  return latestPushes(events, limit).map((p) => {
    const push = pushes.get(p.eid) ?? p;
    const ledger = facts.ledgers.get(p.eid) ?? {};
    const sends = [
      ...parseLedger(ledger),
      ...parseLedger(facts.ledgers.get(`timeout:${p.eid}`) ?? {}).filter((s) => s.slot === 'notice'),
    ];
    const rs = replies.get(p.eid) ?? [];
    const attempts = Number(ledger['attempts'] ?? 0) || 0;
    return {
      eid: p.eid,
      openid: p.openid,
      at: push.at,
      kind: p.kind,
      preview: p.preview,
      route: p.route,
      retries: retries.get(p.eid) ?? 0,
      status: statusOf(p.eid, ledger, attempts, sends, rs, facts),
      attempts,
      sends,
      replies: rs,
    };
  });
}

function statusOf(
  eid: string,
  ledger: Record<string, string>,
  attempts: number,
  sends: SlotView[],
  replies: ReplyView[],
  facts: MessageFacts,
): MessageStatus {
  if (facts.inInbox.has(eid)) return attempts > 0 ? 'processing' : 'queued';
  const bySlot = new Map(sends.map((s) => [s.slot, s]));
  const replySends = replies.flatMap((r) => r.sends);
  if (bySlot.has('giveup')) return 'gave_up';
  const failed = [...sends, ...replySends].some((s) => s.outcome === 'failed' || s.outcome === 'no_budget');
  if (replySends.length) return failed ? 'send_failed' : 'replied';
  if (bySlot.has('answer')) return failed ? 'send_failed' : 'answered';
  if (bySlot.has('notice')) return 'timed_out';
  if (bySlot.has('error')) return 'agent_error';
  if (facts.waiting.has(eid)) return 'with_agent';
  if (ledger['dispatched'] !== undefined) return replies.length ? 'replying' : 'with_agent';
  if (attempts > 0) return 'done';
  return 'expired';
}
