import { seededRandom, waitFor } from '@moltage/testkit';
import { HELP, T } from '../domain/texts.js';
import { keys } from '../keys.js';
import type { Resources, Stack } from './stack.js';

// A steady, bounded stream of simulated users for the whole-stack fault tests, and the checks of
// what every user received. Agent users chat with the agent in their VM (`u<i>-m<n>`, answered
// "收到：u<i>-m<n>" by the tiny-agent image's test agent); command users send `help` and `status`,
// which the bridge answers itself (status asks the orchestrator).

export type UserKind = 'agent' | 'command';

export interface StreamUser {
  openid: string;
  kind: UserKind;
  /** Index among the users of its kind (agent texts carry it). */
  index: number;
  /** This one message of the stream asks the test agent to answer late (`[[delay:<s>]]`). */
  delay?: { message: number; seconds: number };
}

export interface SentMessage {
  user: StreamUser;
  text: string;
  /** WeChat got `success` for the push (one of its attempts). */
  acked: boolean;
  /** The push's MsgId (the bridge's entry is `m:<MsgId>`). */
  msgId?: string | null;
}

/** Short Chinese messages the bridge sends when something failed: each closes one message. */
export const ERROR_TEXTS: ReadonlySet<string> = new Set([
  T.vmFailed,
  T.vmTimeout,
  T.vmHostDown,
  T.agentUnreachable,
  T.agentTimeout,
  T.agentFailed,
  T.internalError,
]);

export function agentText(user: StreamUser, n: number): string {
  const late = user.delay?.message === n ? `[[delay:${user.delay.seconds}]]` : '';
  return `u${user.index}-m${n}${late}`;
}

function commandText(n: number): string {
  return n % 2 === 0 ? 'help' : 'status';
}

export interface StreamOptions {
  messages: number;
  /** Longest wait for an answer before the user writes again anyway. */
  answerWaitMs: number;
  /** Pause between a user's messages: uniform in [0.5, 1.5] × this. */
  thinkMs: number;
  seed: number;
}

/** A running stream: `sent` counts pushes so far; `reached(n)` resolves once n were sent. */
export interface RunningStream {
  readonly sent: number;
  /** The messages sent so far. */
  readonly log: readonly SentMessage[];
  reached(n: number): Promise<void>;
  /** Adds a user mid-stream (e.g. one whose first message meets a fault). */
  add(user: StreamUser): void;
  /** Resolves with every message once all users sent all of theirs (rejects if a user could not). */
  done(): Promise<SentMessage[]>;
  /** Users send nothing more (a test that failed stops its stream before the stack closes). */
  stop(): void;
}

/**
 * Every user sends `messages` messages in order (users in parallel), each after the previous one
 * got something back (answer, notice or error) or `answerWaitMs` passed, then a short pause — as
 * people chat.
 */
export function startStream(stack: Stack, users: StreamUser[], opts: StreamOptions): RunningStream {
  const log: SentMessage[] = [];
  const random = seededRandom(opts.seed);
  let sent = 0;
  let stopped = false;
  const failures: unknown[] = [];
  const runs: Promise<void>[] = [];
  const run = async (user: StreamUser) => {
    for (let n = 0; n < opts.messages && !stopped; n++) {
      const text = user.kind === 'agent' ? agentText(user, n) : commandText(n);
      const before = (await stack.client.inbox(user.openid)).length;
      const push = await stack.client.sendText(user.openid, text);
      log.push({ user, text, acked: push.status === 'ok', msgId: push.msgId });
      sent++;
      await stack.client
        .waitForInbox(user.openid, before + 1, { timeoutMs: opts.answerWaitMs })
        .catch(() => {});
      await new Promise((r) => setTimeout(r, opts.thinkMs * (0.5 + random())));
    }
  };
  const add = (user: StreamUser) => {
    runs.push(
      run(user).catch((err: unknown) => {
        if (!stopped) failures.push(err);
      }),
    );
  };
  for (const u of users) add(u);
  return {
    get sent() {
      return sent;
    },
    log,
    reached: (n) =>
      waitFor(() => sent >= n, { timeoutMs: 300_000, intervalMs: 50, what: `${n} messages sent` }).then(
        () => {},
      ),
    add,
    async done() {
      // Users added while waiting are awaited too.
      for (let i = 0; i < runs.length; i++) await runs[i];
      if (failures.length > 0) throw failures[0];
      return log;
    },
    stop() {
      stopped = true;
    },
  };
}

/** Creates following users (their welcome arrived). */
export async function newUsers(
  stack: Stack,
  count: number,
  kind: UserKind,
  first = 0,
): Promise<StreamUser[]> {
  const users: StreamUser[] = [];
  for (let i = first; i < first + count; i++) users.push({ openid: await stack.newUser(), kind, index: i });
  return users;
}

/** What one user received after the welcome, sorted into kinds. */
export interface Outcome {
  user: StreamUser;
  texts: string[];
  /** Agent replies, as the message text they answer. */
  replies: string[];
  errors: string[];
  coldStarts: number;
  helps: number;
  statuses: number;
  /** Anything else (never allowed: stack traces, error details, unknown texts). */
  other: string[];
}

export async function outcomeOf(stack: Stack, user: StreamUser): Promise<Outcome> {
  const texts = (await stack.texts(user.openid)).slice(1);
  const o: Outcome = {
    user,
    texts,
    replies: [],
    errors: [],
    coldStarts: 0,
    helps: 0,
    statuses: 0,
    other: [],
  };
  for (const t of texts) {
    if (user.kind === 'agent' && t.startsWith('收到：')) o.replies.push(t.slice('收到：'.length));
    else if (ERROR_TEXTS.has(t)) o.errors.push(t);
    else if (t === T.coldStart) o.coldStarts++;
    else if (user.kind === 'command' && t === HELP) o.helps++;
    else if (user.kind === 'command' && t.startsWith('当前状态：')) o.statuses++;
    else o.other.push(t);
  }
  return o;
}

/** Answers plus error messages: what closes a message for the user. */
function closed(o: Outcome): number {
  return o.replies.length + o.errors.length + o.helps + o.statuses;
}

/** Waits until every acked message of every user has an answer or an error message. */
export async function waitForOutcomes(
  stack: Stack,
  users: StreamUser[],
  sent: SentMessage[],
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    async () => {
      for (const u of users) {
        const acked = sent.filter((s) => s.user === u && s.acked).length;
        if (closed(await outcomeOf(stack, u)) < acked) return false;
      }
      return true;
    },
    { timeoutMs, intervalMs: 250, what: 'an answer or an error message for every acked message' },
  ).catch(() => {});
}

/**
 * Checks one user's inbox against what they sent; returns the problems (empty = pass):
 * every acked message answered exactly once (agent: its own "收到：" reply; command: help or
 * status text) or closed by exactly one short error message, nothing sent twice, nothing that is
 * not a known user-facing text, and agent replies in the order the messages were sent.
 */
export function problemsOf(
  o: Outcome,
  sent: SentMessage[],
  opts: { repeatsAllowed?: number } = {},
): string[] {
  const allowed = opts.repeatsAllowed ?? 0;
  const mine = sent.filter((s) => s.user === o.user);
  const acked = mine.filter((s) => s.acked);
  const notAcked = mine.length - acked.length;
  const problems: string[] = [];
  const who = `${o.user.kind} user ${o.user.index}`;
  if (o.other.length > 0) problems.push(`${who}: unexpected texts ${JSON.stringify(o.other)}`);
  if (o.user.kind === 'agent') {
    const texts = new Set(mine.map((s) => s.text));
    const foreign = o.replies.filter((r) => !texts.has(r));
    if (foreign.length > 0)
      problems.push(`${who}: replies to messages never sent ${JSON.stringify(foreign)}`);
    const repeated = o.replies.filter((r, i) => o.replies.indexOf(r) !== i);
    if (repeated.length > allowed) problems.push(`${who}: replies sent twice ${JSON.stringify(repeated)}`);
    const unanswered = acked.filter((s) => !o.replies.includes(s.text)).map((s) => s.text);
    // Each acked message without a reply is closed by one error message; a message WeChat never
    // got an ack for may have been queued anyway, so it may be closed too (at most once).
    if (o.errors.length < unanswered.length || o.errors.length > unanswered.length + notAcked + allowed) {
      problems.push(
        `${who}: ${unanswered.length} acked messages without a reply (${JSON.stringify(unanswered)}) but ${o.errors.length} error messages ${JSON.stringify(o.errors)}`,
      );
    }
    const order = o.replies.map((r) => mine.findIndex((s) => s.text === r));
    if (order.some((x, i) => i > 0 && x < (order[i - 1] as number))) {
      problems.push(`${who}: replies out of order ${JSON.stringify(o.replies)}`);
    }
  } else {
    const helps = mine.filter((s) => s.text === 'help').length;
    const statuses = mine.length - helps;
    if (
      o.helps + o.statuses > helps + statuses + allowed ||
      o.helps > helps + allowed ||
      o.statuses > statuses + allowed
    ) {
      problems.push(
        `${who}: more answers than messages (help ${o.helps}/${helps}, status ${o.statuses}/${statuses})`,
      );
    }
    const n = closed(o);
    if (n < acked.length || n > acked.length + notAcked + allowed) {
      problems.push(
        `${who}: ${acked.length} acked messages (${mine.length} sent) but ${n} answers and errors`,
      );
    }
  }
  return problems;
}

/** Waits until the bridge's queue is empty, no worker holds a user and no reply is awaited. */
export async function bridgeIdle(stack: Stack, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      const [depth, leases, waits, pending] = await Promise.all([
        stack.r.get(keys.depth()),
        stack.r.keys('lease:*'),
        stack.r.zcard(keys.waitsDue()),
        stack.r.xpending(keys.ready(), 'bridge').catch(() => [0]) as Promise<unknown[]>,
      ]);
      return Number(depth ?? 0) === 0 && leases.length === 0 && waits === 0 && Number(pending[0] ?? 0) === 0;
    },
    { timeoutMs, intervalMs: 100, what: 'the bridge queue to be idle' },
  );
}

/**
 * What the orchestrator holds must match exactly the VMs that run: one live QEMU process, one run
 * dir, one pool address and one slot per running record, nothing else, no lock left. Returns the
 * problems (empty = no leak).
 */
export function leaksOf(res: Resources, socketDir: string): string[] {
  const problems: string[] = [];
  const running = res.records.filter((r) => r.state === 'running');
  const stuck = res.records.filter((r) => r.state !== 'running' && r.state !== 'stopped');
  if (stuck.length > 0) {
    problems.push(
      `records neither running nor stopped: ${JSON.stringify(stuck.map((r) => [r.user_id, r.state]))}`,
    );
  }
  const pids = running.map((r) => r.runtime.handle?.pid).filter((p): p is number => typeof p === 'number');
  if (pids.length !== running.length) problems.push('a running record without a process handle');
  const live = res.vmProcesses.map((p) => p.pid).sort();
  if (JSON.stringify(live) !== JSON.stringify([...pids].sort())) {
    problems.push(
      `VM processes ${JSON.stringify(live)} ≠ running records' pids ${JSON.stringify(pids.sort())}`,
    );
  }
  const dirs = running.map((r) => r.runtime.handle?.runDir.slice(socketDir.length + 1)).sort();
  if (JSON.stringify(res.runDirs) !== JSON.stringify(dirs)) {
    problems.push(`run dirs ${JSON.stringify(res.runDirs)} ≠ running VMs' ${JSON.stringify(dirs)}`);
  }
  const pool = Object.fromEntries(running.map((r) => [r.ip, r.user_id]));
  const sortedPool = (p: Record<string, string>) => JSON.stringify(Object.entries(p).sort());
  if (sortedPool(res.ipPool) !== sortedPool(pool)) {
    problems.push(`IP pool ${JSON.stringify(res.ipPool)} ≠ running VMs' ${JSON.stringify(pool)}`);
  }
  const active = running.map((r) => r.user_id).sort();
  if (JSON.stringify(res.active) !== JSON.stringify(active)) {
    problems.push(`VM slots ${JSON.stringify(res.active)} ≠ running VMs ${JSON.stringify(active)}`);
  }
  if (res.locks.length > 0) problems.push(`locks left: ${JSON.stringify(res.locks)}`);
  return problems;
}
