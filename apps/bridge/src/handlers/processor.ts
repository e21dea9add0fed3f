import { splitReply, utf8ByteLength, type WeChatMessage } from '@moltage/wechat';
import { checkBindTarget, type Resolver, systemResolver } from '../adapters/address-guard.js';
import type { AgentWaits } from '../adapters/agent-waits.js';
import type { SendLedger } from '../adapters/ledger.js';
import type { QueueEntry } from '../adapters/queue.js';
import type { EntryContext, EntryHandler } from '../adapters/queue-worker.js';
import { MAX_SSH_KEYS, ReplyPages, type UserRecord, type UserStore } from '../adapters/user-store.js';
import { displayUrl, hostOf, parseBindUrl } from '../domain/address-policy.js';
import type { Command } from '../domain/commands.js';
import type {
  AgentClient,
  AgentPayload,
  AgentTarget,
  Orchestrator,
  VmRecord,
  WeChatOutbound,
} from '../domain/ports.js';
import { MAX_TEXT_BYTES, planReply } from '../domain/reply-plan.js';
import { opensServiceWindow, type Route, routeMessage } from '../domain/route-message.js';
import { parseSshPublicKey, SshKeyParseError } from '../domain/ssh-key.js';
import { generateSshPassword, hashSshPassword } from '../domain/ssh-password.js';
import {
  bindOk,
  boundUnreachable,
  HELP,
  resetWhileBound,
  sshInfo,
  sshkeyAdded,
  sshkeyList,
  sshkeyTooMany,
  statusText,
  T,
  type VmStateView,
  WELCOME,
} from '../domain/texts.js';
import { BridgeError, isBridgeError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { TypingIndicator } from './typing.js';

/** A reply from an agent, as queued by POST /callback. */
export interface ReplyData {
  text: string;
  success: boolean;
  messageId?: string;
  /** When the user message it answers was received (ms), for the latency metric. */
  receivedAt?: number;
}

export interface NoticeData {
  code: 'agent_timeout';
  messageId?: string;
}

export interface ProcessorConfig {
  baseUrl: string;
  sshHost: string;
  sshPort: number;
  vmReadyTimeoutMs: number;
  agentReplyTimeoutMs: number;
  bindAllowPrivate: boolean;
  sshOtpTtlS: number;
  /** Tell the user a cold start is under way after this long (~3 s). */
  coldStartNoticeMs?: number;
  /** Interval between VM state polls. */
  vmPollMs?: number;
}

export interface ProcessorDeps {
  users: UserStore;
  pages: ReplyPages;
  ledger: SendLedger;
  waits: AgentWaits;
  orchestrator: Orchestrator;
  agent: AgentClient;
  wechat: WeChatOutbound;
  typing: TypingIndicator;
  metrics: Metrics;
  config: ProcessorConfig;
  resolver?: Resolver;
  now?: () => number;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new BridgeError('BRIDGE_ABORTED', 'shutting down'));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new BridgeError('BRIDGE_ABORTED', 'shutting down'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Where a message goes: the user's VM or the instance they bound. */
interface ResolvedTarget extends AgentTarget {
  kind: 'vm' | 'bound';
  callbackToken: string;
  display: string;
  /** A VM record remembered from an earlier message (not asked for this one). */
  cached: boolean;
}

/** A running VM's record is reused this long without asking the orchestrator again. */
const VM_CACHE_MS = 30_000;
/** Kept answers go out in at most this many messages, so the new message keeps 3 of its 5. */
const HELD_MAX_PARTS = 2;
/** `touch` (activity for the idle reaper) at most this often per user. */
const TOUCH_EVERY_MS = 60_000;
const MAX_REMEMBERED_USERS = 50_000;

/** Inserts into a Map used as a bounded LRU (oldest entries dropped first). */
function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_REMEMBERED_USERS) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
}

/**
 * Processes one queue entry of a user (pushes, agent replies, notices). Every customer-service
 * message goes through {@link EntryProcessor.send}, which records each message in the entry's
 * ledger so that a retry — in this process or another, after a crash — never sends it twice.
 */
export class EntryProcessor implements EntryHandler {
  readonly #d: ProcessorDeps;
  readonly #now: () => number;
  readonly #resolver: Resolver;
  readonly #vmCache = new Map<string, { vm: VmRecord; until: number }>();
  readonly #touchedAt = new Map<string, number>();

  constructor(deps: ProcessorDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#resolver = deps.resolver ?? systemResolver;
  }

  async process(entry: QueueEntry, ctx: EntryContext): Promise<void> {
    switch (entry.kind) {
      case 'push':
        return this.#push(entry, JSON.parse(entry.data) as WeChatMessage, ctx);
      case 'reply':
        return this.#reply(entry, JSON.parse(entry.data) as ReplyData, ctx);
      case 'notice':
        return this.#notice(entry, JSON.parse(entry.data) as NoticeData, ctx);
      default:
        ctx.log.warn({ kind: entry.kind }, 'dropping a queue entry of unknown kind');
    }
  }

  async giveUp(entry: QueueEntry, err: unknown, ctx: EntryContext): Promise<void> {
    ctx.log.error({ err }, 'could not process a queue entry; telling the user');
    if (entry.kind === 'push') {
      // A reply to it, if one was awaited, no longer holds the user's later messages back.
      await this.#d.waits
        .clear(entry.openid, entry.eid)
        .catch((clearErr) =>
          ctx.log.warn({ err: clearErr }, 'could not end the wait for a given-up message'),
        );
      const route = safeRoute(entry.data);
      if (route && (route.kind === 'ignore' || route.kind === 'unsubscribe')) return;
    }
    try {
      await this.send(entry.openid, entry.eid, 'giveup', T.internalError, ctx);
    } catch (sendErr) {
      ctx.log.error({ err: sendErr }, 'could not tell the user about the failure');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Pushes

  async #push(entry: QueueEntry, msg: WeChatMessage, ctx: EntryContext): Promise<void> {
    const openid = entry.openid;
    const now = new Date(this.#now());
    const route = routeMessage(msg);
    ctx.log.info({ route: route.kind, msgType: msg.msgType }, 'processing a push');

    if (route.kind === 'unsubscribe') {
      await this.#d.users.touch(openid, now, false);
      this.#d.typing.stop(openid);
      this.#vmCache.delete(openid);
      await this.#d.waits.clear(openid);
      // Keep the data disk; the VM starts again when the user comes back.
      try {
        await this.#d.orchestrator.stop(openid, ctx.signal);
      } catch (err) {
        // Its host is down: nothing runs there now, and that host's idle reaper stops it later.
        if (!isBridgeError(err, 'BRIDGE_VM_HOST_DOWN')) throw err;
        ctx.log.info({ err }, 'unsubscribe: the VM host is down; not stopped');
      }
      return;
    }
    const user = await this.#d.users.touch(openid, now, route.kind === 'subscribe' ? true : undefined);
    // The user's action opened a new budget: answers kept for lack of one go out first.
    if (opensServiceWindow(msg)) await this.#deliverHeld(openid, entry, ctx);
    switch (route.kind) {
      case 'ignore':
        ctx.log.debug({ reason: route.reason }, 'nothing to do for this push');
        return;
      case 'subscribe':
        await this.send(openid, entry.eid, 'answer', WELCOME, ctx, { receivedAt: entry.at });
        return;
      case 'answer':
        await this.send(openid, entry.eid, 'answer', route.text, ctx, { receivedAt: entry.at });
        return;
      case 'command': {
        // A retry reuses the first answer: side effects (a new password, a binding) happen once.
        let answer = await this.#d.ledger.get(entry.eid, 'answer');
        if (answer === null) {
          answer = await this.#command(user, route.command, entry, ctx);
          answer = await this.#d.ledger.setOnce(entry.eid, 'answer', answer);
        }
        await this.send(openid, entry.eid, 'answer', answer, ctx, { receivedAt: entry.at });
        await this.#d.ledger.del(entry.eid, 'answer');
        return;
      }
      case 'agent':
        await this.#toAgent(user, entry, route, ctx);
        return;
    }
  }

  async #command(user: UserRecord, cmd: Command, entry: QueueEntry, ctx: EntryContext): Promise<string> {
    const d = this.#d;
    const now = new Date(this.#now());
    switch (cmd.name) {
      case 'help':
        return HELP;
      case 'status': {
        let vm: VmStateView = 'none';
        try {
          const rec = await d.orchestrator.get(user.openid, ctx.signal);
          vm = rec ? vmView(rec.state) : 'none';
        } catch (err) {
          if (ctx.signal.aborted) throw err;
          ctx.log.warn({ err }, 'status: orchestrator unreachable');
          vm = isBridgeError(err, 'BRIDGE_VM_HOST_DOWN') ? 'host_down' : 'unknown';
        }
        return statusText({
          vm,
          binding: user.binding ? displayUrl(user.binding.url) : null,
          sshKeys: user.ssh.publicKeys.length,
        });
      }
      case 'bind-usage':
        return T.bindUsage;
      case 'bind': {
        const parsed = parseBindUrl(cmd.url);
        if (!parsed.ok) return parsed.problem === 'scheme' ? T.bindBadScheme : T.bindInvalid;
        if (cmd.token.length > 1024) return T.bindUsage;
        const verdict = await checkBindTarget(hostOf(parsed.url), d.config.bindAllowPrivate, this.#resolver);
        if (!verdict.ok) {
          if (verdict.problem === 'unresolvable') {
            ctx.log.info('bind refused: host does not resolve');
            return T.bindUnresolvable;
          }
          ctx.log.info({ reason: verdict.reason }, 'bind refused: address not allowed');
          return T.bindForbidden;
        }
        await d.users.bind(user, parsed.url.toString(), cmd.token, now);
        ctx.log.info({ host: parsed.url.host }, 'user bound their own instance');
        return bindOk(displayUrl(parsed.url.toString()));
      }
      case 'unbind': {
        if (!user.binding) return T.unbindNone;
        await d.users.unbind(user);
        return T.unbindOk;
      }
      case 'ssh': {
        const password = generateSshPassword();
        await d.users.storeSshPassword(user, await hashSshPassword(password, now), d.config.sshOtpTtlS);
        const line = `ssh -p ${d.config.sshPort} ${user.openid}@${d.config.sshHost}`;
        return sshInfo(line, password, Math.max(1, Math.round(d.config.sshOtpTtlS / 60)));
      }
      case 'sshkey-add': {
        let key: ReturnType<typeof parseSshPublicKey>;
        try {
          key = parseSshPublicKey(cmd.key);
        } catch (err) {
          if (err instanceof SshKeyParseError) {
            return err.problem === 'weak'
              ? `${T.sshkeyInvalid}\nRSA 密钥至少需要 2048 位。`
              : T.sshkeyInvalid;
          }
          throw err;
        }
        if (!(await d.users.addSshKey(user, key, now))) return sshkeyTooMany(MAX_SSH_KEYS);
        return sshkeyAdded(key.fingerprint, key.type);
      }
      case 'sshkey-clear':
        await d.users.clearSshKeys(user);
        return T.sshkeyCleared;
      case 'sshkey-list':
        return user.ssh.publicKeys.length === 0
          ? T.sshkeyNone
          : sshkeyList(
              user.ssh.publicKeys.map((k) => `${k.type} ${k.fingerprint}${k.comment ? ` ${k.comment}` : ''}`),
            );
      case 'reset': {
        try {
          this.#vmCache.delete(user.openid);
          await d.orchestrator.stop(user.openid, ctx.signal);
          await this.#ensureVm(user, entry, ctx);
        } catch (err) {
          return this.#vmFailureText(err, ctx);
        }
        return user.binding ? resetWhileBound(displayUrl(user.binding.url)) : T.resetOk;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Agent path

  async #toAgent(
    user: UserRecord,
    entry: QueueEntry,
    route: Extract<Route, { kind: 'agent' }>,
    ctx: EntryContext,
  ): Promise<void> {
    const d = this.#d;
    // Dispatched already, or even answered (the process died before recording the dispatch).
    if (await d.ledger.hasAny(entry.eid, ['dispatched', 'replied'])) return;
    let target: ResolvedTarget;
    if (user.binding) {
      target = {
        kind: 'bound',
        url: user.binding.url,
        token: user.binding.token,
        guard: !d.config.bindAllowPrivate,
        callbackToken: user.binding.callbackToken,
        display: displayUrl(user.binding.url),
        cached: false,
      };
    } else {
      const remembered = this.#vmCache.get(user.openid);
      const cached = remembered !== undefined && remembered.until > this.#now();
      let vm: VmRecord;
      if (cached) vm = remembered.vm;
      else {
        try {
          vm = await this.#ensureVm(user, entry, ctx);
        } catch (err) {
          await this.send(user.openid, entry.eid, 'error', this.#vmFailureText(err, ctx), ctx);
          return;
        }
      }
      target = this.#vmTarget(user, vm, cached);
      this.#touch(user.openid, ctx);
    }

    const payload = this.#payload(user.openid, entry, route, target.callbackToken);
    // The reply deadline runs from just before the dispatch (a fast agent may answer before the
    // dispatch call returns, and its reply must find the wait).
    const awaitReply = () =>
      d.waits.add(user.openid, entry.eid, {
        receivedAt: entry.at,
        deadline: this.#now() + d.config.agentReplyTimeoutMs,
      });
    await awaitReply();
    try {
      try {
        await this.#dispatch(target, payload, ctx);
      } catch (err) {
        // A remembered VM may have been stopped or replaced since: ask the orchestrator again.
        if (!target.cached || ctx.signal.aborted) throw err;
        this.#vmCache.delete(user.openid);
        ctx.log.info({ err }, 'remembered VM did not accept the message; asking the orchestrator');
        // Starting the VM again is not the agent's time: no reply deadline runs meanwhile (it
        // could expire during a slow start and the user get a timeout notice and then the answer).
        await d.waits.clear(user.openid, entry.eid);
        target = this.#vmTarget(user, await this.#ensureVm(user, entry, ctx), false);
        await awaitReply();
        await this.#dispatch(target, payload, ctx);
      }
    } catch (err) {
      await d.waits.clear(user.openid, entry.eid);
      if (ctx.signal.aborted) throw err;
      if (
        isBridgeError(err, 'BRIDGE_VM_TIMEOUT') ||
        isBridgeError(err, 'BRIDGE_ORCH_VM_ERROR') ||
        isBridgeError(err, 'BRIDGE_ORCH_UNAVAILABLE') ||
        isBridgeError(err, 'BRIDGE_VM_HOST_DOWN')
      ) {
        await this.send(user.openid, entry.eid, 'error', this.#vmFailureText(err, ctx), ctx);
        return;
      }
      d.metrics.dispatches.inc({ target: target.kind, outcome: 'failed' });
      ctx.log.warn({ err, target: target.kind }, 'agent did not accept the message');
      const text = target.kind === 'bound' ? boundUnreachable(target.display) : T.agentUnreachable;
      await this.send(user.openid, entry.eid, 'error', text, ctx);
      return;
    }
    await d.ledger.set(entry.eid, 'dispatched', String(this.#now()));
    d.metrics.dispatches.inc({ target: target.kind, outcome: 'accepted' });
    d.typing.start(user.openid);
  }

  #vmTarget(user: UserRecord, vm: VmRecord, cached: boolean): ResolvedTarget {
    return {
      kind: 'vm',
      url: vm.agent_url as string,
      token: vm.agent_token as string,
      guard: false,
      callbackToken: user.callbackToken,
      display: 'vm',
      cached,
    };
  }

  /** Tells the orchestrator the VM is in use (for its idle reaper), at most once a minute per user. */
  #touch(openid: string, ctx: EntryContext): void {
    const now = this.#now();
    if (now - (this.#touchedAt.get(openid) ?? 0) < TOUCH_EVERY_MS) return;
    remember(this.#touchedAt, openid, now);
    this.#d.orchestrator.touch(openid).catch((err) => ctx.log.debug({ err }, 'touch failed'));
  }

  #payload(
    openid: string,
    entry: QueueEntry,
    route: Extract<Route, { kind: 'agent' }>,
    callbackToken: string,
  ): AgentPayload {
    const callbackUrl = new URL(`${this.#d.config.baseUrl}/callback`);
    // The community plugin posts to callback_url as given, without a token of its own.
    callbackUrl.searchParams.set('openid', openid);
    callbackUrl.searchParams.set('token', callbackToken);
    const timestamp = Math.floor(entry.at / 1000);
    const msgId = entry.eid.startsWith('m:') ? entry.eid.slice(2) : entry.eid;
    return {
      message_id: entry.eid,
      openid,
      text: route.text,
      msg_type: route.msgType,
      callback_url: callbackUrl.toString(),
      callback_token: callbackToken,
      timestamp,
      task: route.text,
      metadata: { openid, msg_type: route.msgType, msg_id: msgId, message_id: entry.eid, timestamp },
    };
  }

  /** A fresh VM may need a moment after "running" before its agent listens: retry connection failures. */
  async #dispatch(target: ResolvedTarget, payload: AgentPayload, ctx: EntryContext): Promise<void> {
    const attempts = target.kind === 'vm' ? 3 : 1;
    for (let i = 1; ; i++) {
      try {
        await this.#d.agent.dispatch(target, payload, ctx.signal);
        return;
      } catch (err) {
        if (i >= attempts || !isBridgeError(err, 'BRIDGE_AGENT_UNREACHABLE')) throw err;
        await sleep(1000 * i, ctx.signal);
      }
    }
  }

  /**
   * Creates/starts the user's VM and waits until it runs with an agent URL. Tells the user once
   * when that takes longer than ~3 s.
   */
  async #ensureVm(user: UserRecord, entry: QueueEntry, ctx: EntryContext): Promise<VmRecord> {
    const d = this.#d;
    const deadline = this.#now() + d.config.vmReadyTimeoutMs;
    const callback = { url: `${d.config.baseUrl}/callback`, token: user.callbackToken };
    let notice: Promise<void> | null = null;
    const timer = setTimeout(() => {
      notice = this.send(user.openid, entry.eid, 'coldstart', T.coldStart, ctx, { hold: false }).then(
        () => {},
        (err) => ctx.log.warn({ err }, 'could not send the cold-start notice'),
      );
    }, d.config.coldStartNoticeMs ?? 3000);
    try {
      let vm = await d.orchestrator.ensure(user.openid, callback, ctx.signal);
      while (!(vm.state === 'running' && vm.agent_url && vm.agent_token)) {
        if (vm.state === 'error') {
          throw new BridgeError('BRIDGE_ORCH_VM_ERROR', `VM is in error state: ${vm.error ?? 'no detail'}`);
        }
        // Running, but its image has no agent (e.g. VM_IMAGE=tiny): waiting would not help.
        if (vm.state === 'running' && !vm.agent_url) {
          throw new BridgeError('BRIDGE_VM_NO_AGENT', 'the VM runs but its image has no agent');
        }
        if (this.#now() >= deadline) {
          throw new BridgeError('BRIDGE_VM_TIMEOUT', `VM not ready within ${d.config.vmReadyTimeoutMs} ms`);
        }
        await sleep(d.config.vmPollMs ?? 500, ctx.signal);
        const current = await d.orchestrator.get(user.openid, ctx.signal);
        vm =
          current && current.state !== 'stopped'
            ? current
            : await d.orchestrator.ensure(user.openid, callback, ctx.signal);
      }
      remember(this.#vmCache, user.openid, { vm, until: this.#now() + VM_CACHE_MS });
      return vm;
    } finally {
      clearTimeout(timer);
      if (notice) await notice;
    }
  }

  #vmFailureText(err: unknown, ctx: EntryContext): string {
    if (ctx.signal.aborted) throw err;
    ctx.log.warn({ err }, 'could not get a VM for the user');
    if (isBridgeError(err, 'BRIDGE_VM_NO_AGENT')) return T.agentUnreachable;
    if (isBridgeError(err, 'BRIDGE_VM_HOST_DOWN')) return T.vmHostDown;
    return isBridgeError(err, 'BRIDGE_VM_TIMEOUT') ? T.vmTimeout : T.vmFailed;
  }

  // ---------------------------------------------------------------------------------------------
  // Replies and notices

  async #reply(entry: QueueEntry, data: ReplyData, ctx: EntryContext): Promise<void> {
    const text = data.success ? data.text : T.agentFailed;
    await this.send(entry.openid, entry.eid, 'reply', text, ctx, {
      allowPage: true,
      ...(data.receivedAt !== undefined ? { receivedAt: data.receivedAt } : {}),
    });
    if ((await this.#d.waits.count(entry.openid)) === 0) this.#d.typing.stop(entry.openid);
  }

  async #notice(entry: QueueEntry, data: NoticeData, ctx: EntryContext): Promise<void> {
    if (data.code === 'agent_timeout') {
      await this.send(entry.openid, entry.eid, 'notice', T.agentTimeout, ctx);
      if ((await this.#d.waits.count(entry.openid)) === 0) this.#d.typing.stop(entry.openid);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  /**
   * Sends the answers kept for lack of budget (see {@link send}) ahead of this message's own,
   * in at most {@link HELD_MAX_PARTS} messages (a page link for the rest), so the new message keeps
   * most of its budget. Dropped once out; if WeChat refuses them they wait for the next message.
   */
  async #deliverHeld(openid: string, entry: QueueEntry, ctx: EntryContext): Promise<void> {
    const d = this.#d;
    const { answers, count } = await d.ledger.held(openid);
    if (count === 0) return;
    if (answers.length > 0) {
      const text = [T.heldAnswers, ...answers.map((a) => a.text)].join('\n\n');
      const delivered = await this.send(openid, entry.eid, 'held', text, ctx, {
        allowPage: true,
        maxParts: HELD_MAX_PARTS,
        hold: false,
      });
      if (!delivered) return;
      ctx.log.info({ answers: answers.length }, 'sent answers kept for lack of budget');
    }
    await d.ledger.dropHeld(openid, count);
  }

  /**
   * Sends `text` to the user as customer-service messages, at most what the user's budget allows
   * (a longer reply ends with a link to a page with all of it when `allowPage`). What the budget
   * does not let out — nothing left, or WeChat answering 45047/45015 — is kept (`hold`, default
   * on) and sent ahead of the answer to the user's next message. Idempotent per (entry, slot): the
   * plan and each message's state live in the entry's ledger; messages already sent are skipped.
   * A transient WeChat failure throws (the entry is retried later); permanent errors are recorded
   * and end the send. Resolves true when everything planned went out and nothing was kept.
   */
  async send(
    openid: string,
    eid: string,
    slot: string,
    text: string,
    ctx: EntryContext,
    opts: { allowPage?: boolean; receivedAt?: number; maxParts?: number; hold?: boolean } = {},
  ): Promise<boolean> {
    const d = this.#d;
    const hold = opts.hold ?? true;
    const doneBefore = await d.ledger.get(eid, `done:${slot}`);
    if (doneBefore !== null) return doneBefore === '1';
    const planField = `plan:${slot}`;
    let planRaw = await d.ledger.get(eid, planField);
    let complete = true;
    if (planRaw === null) {
      const parts = splitReply(text, MAX_TEXT_BYTES);
      if (parts.length === 0) parts.push(T.agentFailed);
      const wanted = Math.min(parts.length, opts.maxParts ?? parts.length);
      const granted = await d.ledger.reserve(openid, eid, slot, wanted);
      let planned: string[];
      if (granted >= parts.length) planned = parts;
      else if (granted === 0) planned = [];
      else if (opts.allowPage) {
        const id = ReplyPages.newId();
        await d.pages.put(id, { openid, text, createdAt: new Date(this.#now()).toISOString() });
        planned = planReply(text, granted, splitReply, utf8ByteLength, `${d.config.baseUrl}/r/${id}`).parts;
      } else planned = parts.slice(0, granted);
      if (planned.length === 0 || (planned.length < parts.length && !opts.allowPage)) {
        complete = false;
        ctx.log.info(
          { slot, needed: parts.length, granted, kept: hold },
          'reply exceeds the customer-service budget',
        );
        if (hold)
          await d.ledger.hold(
            openid,
            eid,
            `held:${slot}`,
            parts.slice(planned.length).join('\n'),
            this.#now(),
          );
      }
      planRaw = await d.ledger.setOnce(eid, planField, JSON.stringify(planned));
    }
    const planned = JSON.parse(planRaw) as string[];
    for (let i = 0; i < planned.length; i++) {
      const field = `part:${slot}:${i}`;
      const state = await d.ledger.get(eid, field);
      if (state === 'sent' || state === 'skipped' || state?.startsWith('failed:')) continue;
      await d.ledger.set(eid, field, 'sending');
      const outcome = await d.wechat.sendText(openid, planned[i] as string, ctx.signal);
      if (outcome.ok) {
        await d.ledger.set(eid, field, 'sent');
        d.metrics.sends.inc({ outcome: 'sent' });
        if (i === 0 && opts.receivedAt !== undefined) {
          d.metrics.replyLatency.observe(Math.max(0, this.#now() - opts.receivedAt) / 1000);
        }
        continue;
      }
      if (!outcome.permanent) {
        if (ctx.signal.aborted) throw new BridgeError('BRIDGE_ABORTED', 'shutting down');
        throw new BridgeError('BRIDGE_SEND_FAILED', `customer-service send failed: ${outcome.error}`);
      }
      // Permanent: 45015 (window closed / unfollowed), 45047 (budget used), 40003, 48001, …
      await d.ledger.set(eid, field, `failed:${outcome.errcode}`);
      d.metrics.sends.inc({ outcome: 'failed' });
      ctx.log.warn({ errcode: outcome.errcode, slot, part: i }, 'WeChat refused a customer-service message');
      complete = false;
      if (outcome.errcode === 45015 || outcome.errcode === 45047) {
        await d.ledger.exhaust(openid);
        // Not for lack of content: for lack of budget. The rest goes with the next message.
        if (hold)
          await d.ledger.hold(openid, eid, `held:${slot}:refused`, planned.slice(i).join('\n'), this.#now());
      }
      for (let j = i + 1; j < planned.length; j++) {
        await d.ledger.set(eid, `part:${slot}:${j}`, 'skipped');
        d.metrics.sends.inc({ outcome: 'skipped' });
      }
      break;
    }
    if (planned.length === 0) complete = false;
    await d.ledger.set(eid, `done:${slot}`, complete ? '1' : 'partial');
    await d.ledger.del(eid, planField);
    return complete;
  }
}

function vmView(state: string): VmStateView {
  return state === 'running' || state === 'creating' || state === 'stopped' || state === 'error'
    ? state
    : 'unknown';
}

function safeRoute(data: string): Route | null {
  try {
    return routeMessage(JSON.parse(data) as WeChatMessage);
  } catch {
    return null;
  }
}
