import type { Mode } from './account.js';
import type { PushFields } from './inbound.js';

/** A fake WeChat user. Times are ISO strings on the simulator clock. */
export interface SimUser {
  openid: string;
  nickname: string;
  following: boolean;
  createdAt: string;
  followedAt: string | null;
  unfollowedAt: string | null;
  /** Whether the account's typing indicator is showing for this user. */
  typing: boolean;
}

/** The user action a customer-service message was counted against. */
export interface CountedAgainst {
  /** MsgId of the user's message, or `FromUserName:CreateTime` of an event. */
  ref: string;
  msgId: string | null;
  kind: string;
  /** When the user acted (simulator clock, ISO). */
  at: string;
  /** This message was the n-th of the budget for that action (1-based). */
  n: number;
  /** The budget per user action (WeChat: 5). */
  budget: number;
}

/** A message that reached a user from the account. */
export interface InboxEntry {
  id: string;
  openid: string;
  /** `custom_send`: POST /cgi-bin/message/custom/send; `passive_reply`: the XML answer to a push. */
  via: 'custom_send' | 'passive_reply';
  msgtype: string;
  /** The text for text messages, else null. */
  text: string | null;
  /** What the chat shows. */
  preview: string;
  /** Everything that was sent: the JSON body of custom/send, or the reply XML's fields. */
  body: Record<string, unknown>;
  kfAccount?: string;
  /** Arrival time on the simulator clock (ISO). */
  arrivedAt: string;
  /** For custom_send: the user action whose budget it used. Null for passive replies. */
  countsAgainst: CountedAgainst | null;
  /** For passive replies: the push that was answered. */
  pushId?: string;
}

export type AttemptOutcome = 'ok' | 'bad_reply' | 'http_error' | 'timeout' | 'network_error' | 'aborted';

/** One HTTP attempt of a push. */
export interface PushAttempt {
  n: number;
  /** Wall-clock start (ISO). */
  startedAt: string;
  durationMs: number;
  url: string;
  query: Record<string, string>;
  requestBody: string;
  status: number | null;
  body: string | null;
  outcome: AttemptOutcome;
  error: string | null;
}

export type PushStatus = 'pending' | 'ok' | 'bad_reply' | 'failed' | 'undeliverable';

/** A reply the bridge put in the HTTP answer to a push (被动回复). */
export interface PassiveReply {
  msgType: string;
  fields: Record<string, string>;
  /** Whether it came encrypted. */
  encrypted: boolean;
  /** The inbox entry it became, when it was a message for the user. */
  inboxId: string | null;
}

/** One user action pushed (or to be pushed) to the bridge, with every attempt. */
export interface PushRecord {
  id: string;
  openid: string;
  kind: string;
  msgId: string | null;
  /** What retries share: the MsgId, or `FromUserName:CreateTime` for events. */
  ref: string;
  /** CreateTime of the push (seconds). */
  createTime: number;
  /** Simulator clock (ISO). */
  createdAt: string;
  summary: string;
  /** The message's plaintext fields. */
  fields: PushFields;
  /** The plaintext XML (before any encryption). */
  xml: string;
  mode: Mode;
  bridgeUrl: string | null;
  status: PushStatus;
  attempts: PushAttempt[];
  reply: PassiveReply | null;
  /** What WeChat shows the user when the push failed or was answered wrongly. */
  notice: string | null;
  /** Why a bad reply was refused, or why the push was not delivered. */
  problem: string | null;
  finishedAt: string | null;
}

/** A call to the simulated WeChat API, as recorded for tests. Secrets are masked. */
export interface ApiCall {
  id: string;
  /** Simulator clock (ISO). */
  at: string;
  endpoint: string;
  method: string;
  path: string;
  /** Query parameters with access_token and secret masked. */
  query: Record<string, string>;
  /** The parsed JSON body (secret masked), or the raw text when it was not JSON. */
  body: unknown;
  /** The first characters of the access_token used, to tell tokens apart. */
  tokenHint: string | null;
  httpStatus: number | null;
  errcode: number | null;
  /** An armed fault that decided the answer. */
  fault: 'timeout' | 'http500' | 'errcode' | null;
  latencyMs: number;
}

/** A request to the fake LLM. */
export interface LlmRequestRecord {
  id: string;
  at: string;
  endpoint: 'chat_completions' | 'responses';
  model: string | null;
  stream: boolean;
  lastUserText: string | null;
  hadTools: boolean;
  status: number;
  answerBytes: number;
  /** The first 200 characters of the answer. */
  answerPreview: string;
  body: unknown;
}

/** Every change the chat page and SSE clients hear about. */
export type SimEvent =
  | { type: 'user'; openid: string; user: SimUser }
  | { type: 'push'; openid: string; push: PushRecord }
  | { type: 'inbox'; openid: string; entry: InboxEntry }
  | { type: 'typing'; openid: string; typing: boolean }
  | { type: 'account' }
  | { type: 'reset' };
