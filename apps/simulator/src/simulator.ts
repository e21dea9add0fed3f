import { randomBytes, randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  buildXml,
  parseXml,
  sha1Signature,
  utf8ByteLength,
  WeChatError,
  WXBizMsgCrypt,
} from '@moltage/wechat';
import { callOnce } from './adapters/http-out.js';
import {
  type AccountConfig,
  type AccountPatch,
  accountPatchSchema,
  accountProblems,
  applyAccountPatch,
  type PublicAccount,
  publicAccount,
} from './domain/account.js';
import { VirtualClock } from './domain/clock.js';
import { type WxResult, wxError } from './domain/errcodes.js';
import { FaultBoard } from './domain/faults.js';
import {
  bareMsgId,
  buildInbound,
  MsgIdSequence,
  type UserAction,
  type UserMessage,
} from './domain/inbound.js';
import { parseJsonBody, validateCustomMessage, validateTyping } from './domain/outbound.js';
import type {
  ApiCall,
  AttemptOutcome,
  InboxEntry,
  LlmRequestRecord,
  PassiveReply,
  PushAttempt,
  PushRecord,
  SimEvent,
  SimUser,
} from './domain/records.js';
import { ServiceWindows } from './domain/service-window.js';
import { TokenStore } from './domain/token-store.js';
import { SimClosedError, SimConflictError, SimNotFoundError, SimValidationError } from './errors.js';

/** What WeChat shows in the chat when the account's server failed or answered wrongly. */
export const SERVICE_UNAVAILABLE_NOTICE = '该公众号暂时无法提供服务，请稍后再试';

export interface SimulatorOptions {
  /** The fake account; missing credentials are generated (see {@link generateAccount}). */
  account?: Partial<AccountConfig>;
  /** Per push attempt (WeChat: 5000). */
  pushTimeoutMs?: number;
  /** Attempts per push, the first included (WeChat: 3). */
  pushAttempts?: number;
  /** Pause between attempts after a fast failure (connection refused, HTTP 5xx). Default 0. */
  pushRetryDelayMs?: number;
  /** Access token lifetime (WeChat: 7200 s). */
  tokenTtlMs?: number;
  /** Customer-service window (WeChat: 48 h). */
  windowMs?: number;
  /** Customer-service messages per user action (WeChat: 5). */
  messageBudget?: number;
  /** How long the typing indicator shows without a new Typing call (WeChat: 15 s). */
  typingMs?: number;
  /** How long a `timeout` fault holds a request before dropping the connection. Default 120 s. */
  hangMaxMs?: number;
  /** Bearer key the fake LLM requires (none: any or no key is accepted). */
  llmApiKey?: string;
  /** Model ids listed by GET /v1/models. */
  llmModels?: string[];
  /** How many calls, pushes and LLM requests are kept (oldest dropped first). Default 2000. */
  maxRecords?: number;
  /** Wall clock, for tests of the simulator itself. */
  wall?: () => number;
}

export interface WaitOptions {
  /** Resolve only once the push is finished (default true). */
  wait?: boolean;
}

const OPENID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const NICKNAMES = ['小明 Xiaoming', '小红 Xiaohong', '阿强 Aqiang', '莉莉 Lili', '大卫 David', '安娜 Anna'];

function randomString(n: number, alphabet = OPENID_ALPHABET): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

function randomDigits(n: number): string {
  let s = String(randomInt(1, 10));
  while (s.length < n) s += String(randomInt(10));
  return s;
}

/** An account with random credentials, filled in from `partial`. */
export function generateAccount(partial: Partial<AccountConfig> = {}): AccountConfig {
  return {
    appId: partial.appId ?? `wx${randomBytes(8).toString('hex')}`,
    appSecret: partial.appSecret ?? randomBytes(16).toString('hex'),
    token:
      partial.token ?? randomString(32, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'),
    encodingAesKey:
      partial.encodingAesKey ??
      randomString(43, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'),
    mode: partial.mode ?? 'plaintext',
    ...(partial.bridgeUrl !== undefined ? { bridgeUrl: partial.bridgeUrl } : {}),
    originalId: partial.originalId ?? `gh_${randomBytes(6).toString('hex')}`,
  };
}

/** WeChat's request id, appended to error messages. */
export function rid(): string {
  return `${randomBytes(4).toString('hex')}-${randomBytes(4).toString('hex')}-${randomBytes(4).toString('hex')}`;
}

function newAccessToken(): string {
  // Shaped like WeChat's: a numeric prefix, an underscore and ~130 URL-safe characters.
  return `${randomInt(70, 99)}_${randomBytes(96).toString('base64url')}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function pushLimited<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}

type Waiter = () => void;

/**
 * The simulated WeChat platform: one Official Account, its fake users, the API the bridge
 * calls, the pushes it makes to the bridge, and the fake LLM's recordings. The HTTP routes in
 * `http/` are thin layers over this object; tests may also drive it directly (`startSimulator`).
 */
export class Simulator {
  readonly clock: VirtualClock;
  readonly tokens: TokenStore;
  readonly windows: ServiceWindows;
  readonly faults = new FaultBoard();
  readonly events = new EventEmitter<{ event: [SimEvent] }>();
  readonly pushTimeoutMs: number;
  readonly pushAttempts: number;
  readonly pushRetryDelayMs: number;
  readonly typingMs: number;
  readonly hangMaxMs: number;
  readonly llmModels: string[];
  readonly maxRecords: number;

  #account: AccountConfig;
  #crypt: WXBizMsgCrypt | null = null;
  #llmApiKey: string | undefined;
  #users = new Map<string, SimUser>();
  #inbox = new Map<string, InboxEntry[]>();
  #pushes: PushRecord[] = [];
  #pushById = new Map<string, { record: PushRecord; done: Promise<PushRecord> }>();
  #calls: ApiCall[] = [];
  #llmRequests: LlmRequestRecord[] = [];
  #typingTimers = new Map<string, NodeJS.Timeout>();
  #waiters = new Set<Waiter>();
  #msgIds: MsgIdSequence;
  #seq = 0;
  /** Aborted on reset and on close: in-flight pushes stop, their records are dropped. */
  #epoch = new AbortController();
  #closed = false;
  #baseUrl: () => string;

  constructor(opts: SimulatorOptions = {}, baseUrl: () => string = () => 'http://127.0.0.1') {
    this.clock = new VirtualClock(opts.wall);
    this.tokens = new TokenStore(this.clock, {
      newToken: newAccessToken,
      ...(opts.tokenTtlMs !== undefined ? { ttlMs: opts.tokenTtlMs } : {}),
    });
    this.windows = new ServiceWindows({
      ...(opts.windowMs !== undefined ? { windowMs: opts.windowMs } : {}),
      ...(opts.messageBudget !== undefined ? { budget: opts.messageBudget } : {}),
    });
    this.pushTimeoutMs = positive(opts.pushTimeoutMs ?? 5000, 'pushTimeoutMs');
    this.pushAttempts = positive(opts.pushAttempts ?? 3, 'pushAttempts');
    this.pushRetryDelayMs = nonNegative(opts.pushRetryDelayMs ?? 0, 'pushRetryDelayMs');
    this.typingMs = positive(opts.typingMs ?? 15_000, 'typingMs');
    this.hangMaxMs = positive(opts.hangMaxMs ?? 120_000, 'hangMaxMs');
    this.maxRecords = positive(opts.maxRecords ?? 2000, 'maxRecords');
    this.llmModels = opts.llmModels && opts.llmModels.length > 0 ? [...opts.llmModels] : ['fake-model'];
    this.#llmApiKey = opts.llmApiKey;
    this.#baseUrl = baseUrl;
    this.#msgIds = new MsgIdSequence(`24${randomDigits(15)}`, () => randomInt(1, 1000));
    const account = generateAccount(opts.account);
    const problems = accountProblems(account);
    if (problems.length > 0)
      throw new SimValidationError(`invalid account: ${problems.join('; ')}`, problems);
    this.#account = account;
    this.#crypt = this.#cryptFor(account);
  }

  // ---------------------------------------------------------------- account

  /** The full account, secrets included (for the process that owns the simulator). */
  get account(): AccountConfig {
    return { ...this.#account };
  }

  publicAccount(): PublicAccount {
    return publicAccount(this.#account);
  }

  /** Validates and applies a change; on any problem nothing changes. */
  updateAccount(patch: unknown): PublicAccount {
    const parsed = accountPatchSchema.safeParse(patch);
    if (!parsed.success) {
      throw new SimValidationError(
        `invalid account change: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`,
        parsed.error.issues,
      );
    }
    const next = applyAccountPatch(this.#account, parsed.data as AccountPatch);
    const problems = accountProblems(next);
    if (problems.length > 0)
      throw new SimValidationError(`invalid account: ${problems.join('; ')}`, problems);
    this.#setAccount(next);
    this.#emit({ type: 'account' });
    return this.publicAccount();
  }

  #setAccount(a: AccountConfig): void {
    this.#account = a;
    this.#crypt = this.#cryptFor(a);
  }

  #cryptFor(a: AccountConfig): WXBizMsgCrypt | null {
    return a.encodingAesKey
      ? new WXBizMsgCrypt({ token: a.token, encodingAesKey: a.encodingAesKey, appId: a.appId })
      : null;
  }

  get llmApiKey(): string | undefined {
    return this.#llmApiKey;
  }

  setLlmApiKey(key: string | null): void {
    if (key !== null && (typeof key !== 'string' || key.length === 0 || key.length > 512)) {
      throw new SimValidationError('apiKey must be a non-empty string of at most 512 characters, or null');
    }
    this.#llmApiKey = key ?? undefined;
  }

  // ---------------------------------------------------------------- users

  createUser(input: { openid?: string; nickname?: string } = {}): SimUser {
    this.#assertOpen();
    const openid = input.openid ?? `o${randomString(27)}`;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(openid)) {
      throw new SimValidationError('openid must be 1-64 letters, digits, _ or -');
    }
    if (input.nickname !== undefined && (input.nickname.length === 0 || input.nickname.length > 64)) {
      throw new SimValidationError('nickname must be 1-64 characters');
    }
    if (this.#users.has(openid))
      throw new SimConflictError('SIM_USER_EXISTS', `user ${openid} already exists`);
    const user: SimUser = {
      openid,
      nickname: input.nickname ?? NICKNAMES[this.#users.size % NICKNAMES.length]!,
      following: false,
      createdAt: this.#iso(),
      followedAt: null,
      unfollowedAt: null,
      typing: false,
    };
    this.#users.set(openid, user);
    this.#inbox.set(openid, []);
    this.#emit({ type: 'user', openid, user: { ...user } });
    return { ...user };
  }

  users(): SimUser[] {
    return [...this.#users.values()].map((u) => ({ ...u }));
  }

  user(openid: string): SimUser {
    return { ...this.#userRef(openid) };
  }

  /** The customer-service window of a user: what they last did and how much budget is left. */
  windowOf(openid: string) {
    this.#userRef(openid);
    const s = this.windows.state(openid);
    if (!s) return null;
    return {
      ref: s.interaction.ref,
      kind: s.interaction.kind,
      at: new Date(s.interaction.at).toISOString(),
      used: s.used,
      remaining: s.remaining,
      closesAt: new Date(s.closesAt).toISOString(),
      open: !s.closed && this.clock.now() - s.interaction.at <= this.windows.windowMs,
    };
  }

  #userRef(openid: string): SimUser {
    const u = this.#users.get(openid);
    if (!u) throw new SimNotFoundError('SIM_USER_NOT_FOUND', `no user ${openid}`);
    return u;
  }

  /** The user follows the account: a `subscribe` event (with `qrscene_<scene>` when given). */
  async follow(openid: string, opts: { qrscene?: string } & WaitOptions = {}): Promise<PushRecord> {
    const user = this.#userRef(openid);
    if (user.following) throw new SimConflictError('SIM_ALREADY_FOLLOWING', `user ${openid} already follows`);
    if (opts.qrscene !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(opts.qrscene)) {
      throw new SimValidationError('qrscene must be 1-64 letters, digits, _ or -');
    }
    this.#assertOpen();
    user.following = true;
    user.followedAt = this.#iso();
    this.#emit({ type: 'user', openid, user: { ...user } });
    const action: UserAction = {
      type: 'event',
      event: 'subscribe',
      ...(opts.qrscene !== undefined ? { qrscene: opts.qrscene } : {}),
    };
    return this.#dispatch(user, action, opts.wait ?? true);
  }

  /** The user unfollows: an `unsubscribe` event; the customer-service window closes. */
  async unfollow(openid: string, opts: WaitOptions = {}): Promise<PushRecord> {
    const user = this.#userRef(openid);
    if (!user.following) throw new SimConflictError('SIM_NOT_FOLLOWING', `user ${openid} does not follow`);
    this.#assertOpen();
    user.following = false;
    user.unfollowedAt = this.#iso();
    this.windows.close(openid);
    this.#setTyping(openid, false);
    this.#emit({ type: 'user', openid, user: { ...user } });
    return this.#dispatch(user, { type: 'event', event: 'unsubscribe' }, opts.wait ?? true);
  }

  /** The user sends a message or triggers an event; it is pushed to the bridge. */
  async send(openid: string, message: UserMessage, opts: WaitOptions = {}): Promise<PushRecord> {
    const user = this.#userRef(openid);
    if (!user.following) {
      throw new SimConflictError(
        'SIM_NOT_FOLLOWING',
        `user ${openid} does not follow the account, so cannot message it`,
      );
    }
    this.#assertOpen();
    return this.#dispatch(user, message, opts.wait ?? true);
  }

  inbox(openid: string): InboxEntry[] {
    this.#userRef(openid);
    return (this.#inbox.get(openid) ?? []).map((e) => ({ ...e }));
  }

  /** Resolves once the user's inbox holds at least `count` messages, or after `timeoutMs` (check `complete`). */
  async waitForInbox(
    openid: string,
    count: number,
    timeoutMs: number,
  ): Promise<{ complete: boolean; entries: InboxEntry[] }> {
    this.#userRef(openid);
    await this.#waitUntil(
      () => (this.#inbox.get(openid)?.length ?? 0) >= count || !this.#users.has(openid),
      timeoutMs,
    );
    const entries = this.#users.has(openid) ? this.inbox(openid) : [];
    return { complete: entries.length >= count, entries };
  }

  // ---------------------------------------------------------------- pushes

  pushes(filter: { openid?: string } = {}): PushRecord[] {
    return this.#pushes.filter((p) => !filter.openid || p.openid === filter.openid).map(clonePush);
  }

  push(id: string): PushRecord {
    const p = this.#pushById.get(id);
    if (!p) throw new SimNotFoundError('SIM_PUSH_NOT_FOUND', `no push ${id}`);
    return clonePush(p.record);
  }

  /** Resolves with the push once it is finished, or as it stands after `timeoutMs`. */
  async waitForPush(id: string, timeoutMs: number): Promise<PushRecord> {
    const p = this.#pushById.get(id);
    if (!p) throw new SimNotFoundError('SIM_PUSH_NOT_FOUND', `no push ${id}`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(r, timeoutMs);
    });
    await Promise.race([p.done, timeout]);
    clearTimeout(timer);
    return clonePush(p.record);
  }

  async #dispatch(user: SimUser, action: UserAction, wait: boolean): Promise<PushRecord> {
    const account = this.#account;
    const now = this.clock.now();
    const inbound = buildInbound(action, {
      toUserName: account.originalId,
      fromUserName: user.openid,
      // The bridge compares timestamps with its own (real) clock, so pushes carry wall time.
      createTime: Math.floor(Date.now() / 1000),
      msgId: this.#msgIds.next(),
      mediaId: randomBytes(32).toString('base64url'),
      mediaBaseUrl: this.#baseUrl(),
    });
    if (inbound.opensWindow) {
      this.windows.open(user.openid, { ref: inbound.ref, kind: inbound.kind, at: now });
    }
    const record: PushRecord = {
      id: this.#id('p'),
      openid: user.openid,
      kind: inbound.kind,
      msgId: inbound.msgId,
      ref: inbound.ref,
      createTime: inbound.fields['CreateTime'] as number,
      createdAt: new Date(now).toISOString(),
      summary: inbound.summary,
      fields: inbound.fields,
      xml: bareMsgId(buildXml(inbound.fields)),
      mode: account.mode,
      bridgeUrl: account.bridgeUrl ?? null,
      status: 'pending',
      attempts: [],
      reply: null,
      notice: null,
      problem: null,
      finishedAt: null,
    };
    pushLimited(this.#pushes, record, this.maxRecords);
    const crypt = account.mode === 'plaintext' ? null : this.#crypt;
    const done = this.#deliver(record, account, crypt, this.#epoch.signal).then(() => clonePush(record));
    this.#pushById.set(record.id, { record, done });
    this.#prunePushIndex();
    this.#emitPush(record);
    if (!wait) return clonePush(record);
    return done;
  }

  /** Delivers with the account and crypto as they were when the user acted. */
  async #deliver(
    record: PushRecord,
    account: AccountConfig,
    crypt: WXBizMsgCrypt | null,
    signal: AbortSignal,
  ): Promise<void> {
    if (!account.bridgeUrl) {
      this.#finish(
        record,
        'undeliverable',
        'no bridge URL is configured (SIM_BRIDGE_URL or PATCH /sim/account)',
      );
      return;
    }
    for (let n = 1; n <= this.pushAttempts; n++) {
      if (signal.aborted) {
        this.#finish(record, 'failed', 'aborted: the simulator was reset or closed');
        return;
      }
      const timestamp = String(Math.floor(Date.now() / 1000));
      const nonce = randomDigits(10);
      const query: Record<string, string> = {
        signature: sha1Signature(account.token, timestamp, nonce),
        timestamp,
        nonce,
        openid: record.openid,
      };
      let body = record.xml;
      if (crypt) {
        const encrypt = crypt.encrypt(record.xml);
        query['encrypt_type'] = 'aes';
        query['msg_signature'] = sha1Signature(account.token, timestamp, nonce, encrypt);
        body =
          account.mode === 'safe'
            ? buildXml({ ToUserName: account.originalId, Encrypt: encrypt })
            : bareMsgId(buildXml({ ...record.fields, Encrypt: encrypt }));
      }
      const url = new URL(account.bridgeUrl);
      for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
      const startedAt = new Date().toISOString();
      const res = await callOnce({
        method: 'POST',
        url: url.toString(),
        body,
        contentType: 'text/xml',
        timeoutMs: this.pushTimeoutMs,
        signal,
      });
      const attempt: PushAttempt = {
        n,
        startedAt,
        durationMs: res.durationMs,
        url: url.toString(),
        query,
        requestBody: body,
        status: res.status,
        body: res.body,
        outcome: res.outcome === 'answered' ? 'ok' : res.outcome,
        error: res.error,
      };
      if (res.outcome === 'answered' && res.status !== null && res.status >= 200 && res.status < 300) {
        const verdict = this.#judgeReply(res.body ?? '', record, account, crypt);
        attempt.outcome = verdict.ok ? 'ok' : 'bad_reply';
        attempt.error = verdict.ok ? null : verdict.problem;
        record.attempts.push(attempt);
        if (verdict.ok) {
          if (verdict.reply) record.reply = verdict.reply;
          this.#finish(record, 'ok', null);
        } else {
          this.#finish(record, 'bad_reply', verdict.problem);
        }
        return;
      }
      if (res.outcome === 'answered') {
        attempt.outcome = 'http_error' satisfies AttemptOutcome;
        attempt.error = `HTTP ${res.status}`;
      }
      record.attempts.push(attempt);
      this.#emitPush(record);
      if (res.outcome === 'aborted') {
        this.#finish(record, 'failed', 'aborted: the simulator was reset or closed');
        return;
      }
      if (n < this.pushAttempts && res.outcome !== 'timeout') await sleep(this.pushRetryDelayMs, signal);
    }
    this.#finish(record, 'failed', `no valid answer after ${this.pushAttempts} attempts`);
  }

  #finish(record: PushRecord, status: PushRecord['status'], problem: string | null): void {
    record.status = status;
    record.problem = problem;
    record.notice = status === 'bad_reply' || status === 'failed' ? SERVICE_UNAVAILABLE_NOTICE : null;
    record.finishedAt = this.#iso();
    this.#emitPush(record);
    this.#notifyWaiters();
  }

  /**
   * Judges the HTTP 2xx answer to a push as WeChat does: `success` or an empty body is a
   * plain acknowledgement; otherwise it must be a passive-reply XML addressed back to the
   * user (encrypted in safe mode, either way in compatible mode, plaintext in plaintext mode).
   */
  #judgeReply(
    body: string,
    record: PushRecord,
    account: AccountConfig,
    crypt: WXBizMsgCrypt | null,
  ): { ok: true; reply: PassiveReply | null } | { ok: false; problem: string } {
    const trimmed = body.trim();
    if (trimmed === '' || trimmed === 'success') return { ok: true, reply: null };
    if (!trimmed.startsWith('<')) {
      return {
        ok: false,
        problem: `the answer is neither "success", empty, nor XML: ${JSON.stringify(trimmed.slice(0, 80))}`,
      };
    }
    let outer: Record<string, string>;
    try {
      outer = parseXml(trimmed);
    } catch (err) {
      return { ok: false, problem: `the reply is not valid XML: ${(err as Error).message}` };
    }
    let inner = outer;
    let encrypted = false;
    if (outer['Encrypt'] !== undefined) {
      if (!crypt) {
        return { ok: false, problem: 'an encrypted reply in plaintext mode' };
      }
      const { MsgSignature, TimeStamp, Nonce } = outer;
      if (!MsgSignature || !TimeStamp || !Nonce) {
        return { ok: false, problem: 'the encrypted reply lacks MsgSignature, TimeStamp or Nonce' };
      }
      try {
        const xml = crypt.decryptPush(
          { msgSignature: MsgSignature, timestamp: TimeStamp, nonce: Nonce },
          trimmed,
        );
        inner = parseXml(xml);
        encrypted = true;
      } catch (err) {
        const code = err instanceof WeChatError ? `${err.code}: ` : '';
        return { ok: false, problem: `the encrypted reply was refused: ${code}${(err as Error).message}` };
      }
    } else if (account.mode === 'safe') {
      return {
        ok: false,
        problem: 'safe mode needs an encrypted reply (<Encrypt>, MsgSignature, TimeStamp, Nonce)',
      };
    }
    if (inner['ToUserName'] !== record.openid) {
      return { ok: false, problem: `the reply's ToUserName is not the user's openid ${record.openid}` };
    }
    if (inner['FromUserName'] !== account.originalId) {
      return {
        ok: false,
        problem: `the reply's FromUserName is not the account's original id ${account.originalId}`,
      };
    }
    const msgType = inner['MsgType'] ?? '';
    const reply: PassiveReply = { msgType, fields: inner, encrypted, inboxId: null };
    let preview: string;
    let text: string | null = null;
    switch (msgType) {
      case 'text':
        if (!inner['Content']) return { ok: false, problem: 'a text reply without Content' };
        text = inner['Content'];
        preview = text;
        break;
      case 'image':
      case 'voice':
        if (!inner[`${msgType === 'image' ? 'Image' : 'Voice'}.MediaId`]) {
          return { ok: false, problem: `a ${msgType} reply without MediaId` };
        }
        preview = `[${msgType}]`;
        break;
      case 'video':
        preview = `[video] ${inner['Video.Title'] ?? ''}`.trimEnd();
        break;
      case 'music':
        preview = `[music] ${inner['Music.Title'] ?? ''}`.trimEnd();
        break;
      case 'news':
        preview = `[news] ${inner['Articles.item.Title'] ?? ''}`.trimEnd();
        break;
      case 'transfer_customer_service':
        // Hands the conversation to human agents: nothing reaches the user.
        return { ok: true, reply };
      default:
        return { ok: false, problem: `unknown reply MsgType ${JSON.stringify(msgType)}` };
    }
    const entry = this.#addInbox(record.openid, {
      via: 'passive_reply',
      msgtype: msgType,
      text,
      preview,
      body: { ...inner },
      countsAgainst: null,
      pushId: record.id,
    });
    reply.inboxId = entry.id;
    return { ok: true, reply };
  }

  /** Makes WeChat's URL check (GET with echostr) against the bridge URL. */
  async verifyUrl(opts: { badSignature?: boolean } = {}) {
    this.#assertOpen();
    const account = this.#account;
    if (!account.bridgeUrl) throw new SimConflictError('SIM_NO_BRIDGE_URL', 'no bridge URL is configured');
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = randomDigits(10);
    const echostr = randomDigits(19);
    const signature = opts.badSignature
      ? sha1Signature(`${account.token}x`, timestamp, nonce)
      : sha1Signature(account.token, timestamp, nonce);
    const url = new URL(account.bridgeUrl);
    for (const [k, v] of Object.entries({ signature, echostr, timestamp, nonce })) url.searchParams.set(k, v);
    const res = await callOnce({
      method: 'GET',
      url: url.toString(),
      timeoutMs: this.pushTimeoutMs,
      signal: this.#epoch.signal,
    });
    return {
      ok: res.outcome === 'answered' && res.status === 200 && res.body === echostr,
      echostr,
      badSignature: opts.badSignature === true,
      url: url.toString(),
      status: res.status,
      body: res.body,
      outcome: res.outcome,
      error: res.error,
      durationMs: res.durationMs,
    };
  }

  // ---------------------------------------------------------------- WeChat API (the bridge's side)

  /** GET /cgi-bin/token */
  apiToken(
    query: Record<string, string | undefined>,
  ): WxResult | { access_token: string; expires_in: number } {
    const cred = this.#checkCredentials(query['grant_type'], query['appid'], query['secret']);
    if (cred !== 0) return wxError(cred, rid());
    const t = this.tokens.issueBasic();
    return { access_token: t.token, expires_in: t.expiresIn };
  }

  /** POST /cgi-bin/stable_token */
  apiStableToken(raw: string | undefined): WxResult | { access_token: string; expires_in: number } {
    const parsed = parseJsonBody(raw);
    if (!parsed.ok) return wxError(parsed.errcode, rid());
    const b = parsed.value;
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const force = b['force_refresh'];
    if (force !== undefined && typeof force !== 'boolean') return wxError(47001, rid());
    const cred = this.#checkCredentials(str(b['grant_type']), str(b['appid']), str(b['secret']));
    if (cred !== 0) return wxError(cred, rid());
    const r = this.tokens.issueStable(force === true);
    if (!r.ok) return wxError(r.errcode, rid());
    return { access_token: r.token, expires_in: r.expiresIn };
  }

  #checkCredentials(grantType?: string, appid?: string, secret?: string): number {
    if (grantType !== 'client_credential') return 40002;
    if (!appid) return 41002;
    if (!secret) return 41004;
    if (appid !== this.#account.appId) return 40013;
    if (secret !== this.#account.appSecret) return 40125;
    return 0;
  }

  /** 0 when `accessToken` may call the API, else WeChat's errcode. */
  checkAccessToken(accessToken: string | undefined): number {
    if (!accessToken) return 41001;
    switch (this.tokens.check(accessToken)) {
      case 'valid':
        return 0;
      case 'expired':
        return 42001;
      case 'malformed':
        return 40014;
      default:
        return 40001;
    }
  }

  /** POST /cgi-bin/message/custom/send */
  apiCustomSend(accessToken: string | undefined, raw: string | undefined): WxResult {
    const auth = this.checkAccessToken(accessToken);
    if (auth !== 0) return wxError(auth, rid());
    const parsed = parseJsonBody(raw);
    if (!parsed.ok) return wxError(parsed.errcode, rid());
    const touser = parsed.value['touser'];
    if (typeof touser === 'string' && touser !== '' && !this.#users.has(touser)) return wxError(40003, rid());
    const v = validateCustomMessage(parsed.value, utf8ByteLength);
    if (!v.ok) return wxError(v.errcode, rid());
    const msg = v.value;
    const user = this.#users.get(msg.touser)!;
    if (!user.following) return wxError(45015, rid());
    const verdict = this.windows.consume(msg.touser, this.clock.now());
    if (!verdict.ok) return wxError(verdict.errcode, rid());
    this.#setTyping(msg.touser, false);
    this.#addInbox(msg.touser, {
      via: 'custom_send',
      msgtype: msg.msgtype,
      text: msg.msgtype === 'text' ? msg.preview : null,
      preview: msg.preview,
      body: parsed.value,
      ...(msg.kfAccount !== undefined ? { kfAccount: msg.kfAccount } : {}),
      countsAgainst: {
        ref: verdict.countsAgainst.ref,
        msgId: /^\d+$/.test(verdict.countsAgainst.ref) ? verdict.countsAgainst.ref : null,
        kind: verdict.countsAgainst.kind,
        at: new Date(verdict.countsAgainst.at).toISOString(),
        n: verdict.used,
        budget: this.windows.budget,
      },
    });
    return wxError(0);
  }

  /** POST /cgi-bin/message/custom/typing — never uses the message budget. */
  apiTyping(accessToken: string | undefined, raw: string | undefined): WxResult {
    const auth = this.checkAccessToken(accessToken);
    if (auth !== 0) return wxError(auth, rid());
    const parsed = parseJsonBody(raw);
    if (!parsed.ok) return wxError(parsed.errcode, rid());
    const touser = parsed.value['touser'];
    if (typeof touser === 'string' && touser !== '' && !this.#users.has(touser)) return wxError(40003, rid());
    const v = validateTyping(parsed.value);
    if (!v.ok) return wxError(v.errcode, rid());
    const user = this.#users.get(v.value.touser)!;
    if (!user.following) return wxError(45015, rid());
    const verdict = this.windows.check(v.value.touser, this.clock.now());
    if (!verdict.ok && verdict.errcode === 45015) return wxError(45015, rid());
    this.#setTyping(v.value.touser, v.value.command === 'Typing');
    return wxError(0);
  }

  #setTyping(openid: string, on: boolean): void {
    const user = this.#users.get(openid);
    if (!user) return;
    const timer = this.#typingTimers.get(openid);
    if (timer) clearTimeout(timer);
    this.#typingTimers.delete(openid);
    if (on) {
      const t = setTimeout(() => this.#setTyping(openid, false), this.typingMs);
      t.unref();
      this.#typingTimers.set(openid, t);
    }
    if (user.typing !== on) {
      user.typing = on;
      this.#emit({ type: 'typing', openid, typing: on });
    }
  }

  // ---------------------------------------------------------------- records

  recordCall(call: Omit<ApiCall, 'id' | 'at'>): ApiCall {
    const full: ApiCall = { id: this.#id('c'), at: this.#iso(), ...call };
    pushLimited(this.#calls, full, this.maxRecords);
    return full;
  }

  calls(filter: { endpoint?: string } = {}): ApiCall[] {
    return this.#calls
      .filter((c) => !filter.endpoint || c.endpoint === filter.endpoint)
      .map((c) => ({ ...c }));
  }

  clearCalls(): void {
    this.#calls = [];
  }

  recordLlmRequest(r: Omit<LlmRequestRecord, 'id' | 'at'>): LlmRequestRecord {
    const full: LlmRequestRecord = { id: this.#id('l'), at: this.#iso(), ...r };
    pushLimited(this.#llmRequests, full, this.maxRecords);
    this.#notifyWaiters();
    return full;
  }

  llmRequests(): LlmRequestRecord[] {
    return this.#llmRequests.map((r) => ({ ...r }));
  }

  clearLlmRequests(): void {
    this.#llmRequests = [];
  }

  /** Forgets users, messages, pushes, calls, tokens, faults, the clock offset and LLM requests. Keeps the account. */
  reset(): void {
    this.#epoch.abort();
    this.#epoch = new AbortController();
    for (const t of this.#typingTimers.values()) clearTimeout(t);
    this.#typingTimers.clear();
    this.#users.clear();
    this.#inbox.clear();
    this.#pushes = [];
    this.#pushById.clear();
    this.#calls = [];
    this.#llmRequests = [];
    this.tokens.reset();
    this.windows.reset();
    this.faults.clear();
    this.clock.reset();
    this.#emit({ type: 'reset' });
    this.#notifyWaiters();
  }

  /** Stops in-flight pushes and wakes every waiter. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#epoch.abort();
    for (const t of this.#typingTimers.values()) clearTimeout(t);
    this.#typingTimers.clear();
    this.#notifyWaiters();
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---------------------------------------------------------------- internals

  #addInbox(openid: string, e: Omit<InboxEntry, 'id' | 'openid' | 'arrivedAt'>): InboxEntry {
    const entry: InboxEntry = { id: this.#id('m'), openid, arrivedAt: this.#iso(), ...e };
    const list = this.#inbox.get(openid);
    if (list) pushLimited(list, entry, this.maxRecords);
    this.#emit({ type: 'inbox', openid, entry: { ...entry } });
    this.#notifyWaiters();
    return entry;
  }

  #emitPush(record: PushRecord): void {
    this.#emit({ type: 'push', openid: record.openid, push: clonePush(record) });
  }

  #emit(e: SimEvent): void {
    this.events.emit('event', e);
  }

  #prunePushIndex(): void {
    if (this.#pushById.size <= this.maxRecords) return;
    const keep = new Set(this.#pushes.map((p) => p.id));
    for (const id of this.#pushById.keys()) if (!keep.has(id)) this.#pushById.delete(id);
  }

  #waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
    if (cond() || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const check: Waiter = () => {
        if (cond() || this.#closed) finish();
      };
      const timer = setTimeout(finish, Math.max(0, timeoutMs));
      this.#waiters.add(check);
    });
  }

  #notifyWaiters(): void {
    for (const w of [...this.#waiters]) w();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SimClosedError();
  }

  #iso(): string {
    return new Date(this.clock.now()).toISOString();
  }

  #id(prefix: string): string {
    this.#seq += 1;
    return `${prefix}${this.#seq}`;
  }
}

function clonePush(p: PushRecord): PushRecord {
  return {
    ...p,
    fields: { ...p.fields },
    attempts: p.attempts.map((a) => ({ ...a, query: { ...a.query } })),
    reply: p.reply ? { ...p.reply, fields: { ...p.reply.fields } } : null,
  };
}

function positive(n: number, name: string): number {
  if (!Number.isFinite(n) || n <= 0) throw new SimValidationError(`${name} must be a positive number`);
  return n;
}

function nonNegative(n: number, name: string): number {
  if (!Number.isFinite(n) || n < 0) throw new SimValidationError(`${name} must be a non-negative number`);
  return n;
}
