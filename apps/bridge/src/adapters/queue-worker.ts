import { setMaxListeners } from 'node:events';
import { deferredChild, type Logger } from '@moltage/core';
import type { Redis } from 'ioredis';
import type { Metrics } from '../metrics.js';
import type { PushPressure } from '../push-pressure.js';
import { LEDGER_TTL_S } from './ledger.js';
import { leaseToken, type QueueEntry, type RedisQueue } from './queue.js';

export interface EntryContext {
  /** 1 for the first try; counts tries across crashes and processes. */
  attempt: number;
  /** Aborted when the bridge shuts down and the grace period is over. */
  signal: AbortSignal;
  log: Logger;
}

export interface EntryHandler {
  process(entry: QueueEntry, ctx: EntryContext): Promise<void>;
  /** Called once an entry failed `maxAttempts` times; must not throw for ordinary failures. */
  giveUp(entry: QueueEntry, err: unknown, ctx: EntryContext): Promise<void>;
}

export interface AttemptCounter {
  /** Increments and returns the persisted attempt count of an entry. */
  attempt(eid: string): Promise<number>;
  /** Undoes an attempt that was interrupted by shutdown. */
  unattempt(eid: string): Promise<void>;
}

export interface WorkerOptions {
  consumer: string;
  concurrency: number;
  /** A notification idle this long is claimed by another worker; leases last as long. */
  claimIdleMs: number;
  maxAttempts?: number;
  retryBaseMs?: number;
  /** How long a read blocks (lower in tests makes shutdown quicker). */
  blockMs?: number;
}

function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Drains user inboxes: reads notifications from `queue:ready`, takes the user's lease, processes
 * the user's entries in order, one at a time, and releases the lease when nothing is left to do
 * (the inbox is empty, or its messages wait for the agent's reply to an earlier one). Different
 * users run in parallel up to `concurrency`. Notifications of a crashed worker are claimed after
 * `claimIdleMs`, and its lease with them: the claimer continues that user's inbox at the oldest
 * entry. Entries are retried up to `maxAttempts` (counted in Redis, so a message that crashes the
 * process is eventually given up).
 */
export class QueueWorker {
  readonly #queue: RedisQueue;
  readonly #blocking: Redis;
  readonly #handler: EntryHandler;
  readonly #attempts: AttemptCounter;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #pressure: PushPressure | undefined;
  readonly #opts: Required<WorkerOptions>;
  readonly #active = new Map<string, Promise<void>>();
  readonly #abort = new AbortController();
  #stopping = false;
  #waiters: (() => void)[] = [];
  #loops: Promise<void>[] = [];
  #stopTimer: NodeJS.Timeout | undefined;
  #onStop: () => void = () => {};
  readonly #stopped = new Promise<null>((resolve) => {
    this.#onStop = () => resolve(null);
  });

  constructor(deps: {
    queue: RedisQueue;
    blocking: Redis;
    handler: EntryHandler;
    attempts: AttemptCounter;
    log: Logger;
    metrics: Metrics;
    options: WorkerOptions;
    /** When given, steps go one at a time (waiting, bounded) while many pushes wait for their ack. */
    pressure?: PushPressure;
  }) {
    this.#queue = deps.queue;
    this.#blocking = deps.blocking;
    this.#handler = deps.handler;
    this.#attempts = deps.attempts;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#pressure = deps.pressure;
    this.#opts = { maxAttempts: 5, retryBaseMs: 1000, blockMs: 1000, ...deps.options };
    // Every drain in flight listens on the shutdown signal (its HTTP calls, its backoff, its wait
    // for acks): up to a few each, `concurrency` drains at once. Node warns at 10 by default.
    setMaxListeners(Math.max(10, 4 * this.#opts.concurrency), this.#abort.signal);
  }

  get consumer(): string {
    return this.#opts.consumer;
  }

  get leaseMs(): number {
    return this.#opts.claimIdleMs;
  }

  /** Users being drained by this process right now. */
  get activeCount(): number {
    return this.#active.size;
  }

  start(): void {
    this.#loops.push(this.#readLoop(), this.#claimLoop());
  }

  /**
   * Stops taking work, lets in-flight entries finish for up to `graceMs`, then aborts them and
   * hands their users back to the queue (another process continues where this one stopped).
   */
  async stop(graceMs: number): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#onStop();
    this.#wake();
    this.#blocking.disconnect();
    const all = () => Promise.allSettled([...this.#active.values()]);
    await Promise.race([
      all(),
      new Promise<void>((r) => {
        this.#stopTimer = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(this.#stopTimer);
    this.#abort.abort();
    await all();
    await Promise.allSettled(this.#loops);
  }

  #free(): number {
    return this.#opts.concurrency - this.#active.size;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #slotFreed(): Promise<void> {
    return new Promise((r) => this.#waiters.push(r));
  }

  async #readLoop(): Promise<void> {
    while (!this.#stopping) {
      if (this.#free() <= 0) {
        await this.#slotFreed();
        continue;
      }
      try {
        const reading = this.#queue.read(
          this.#blocking,
          this.#opts.consumer,
          this.#free(),
          this.#opts.blockMs,
        );
        // While Redis is unreachable a read can wait in the client's offline queue even past
        // disconnect(); stopping must not wait for it.
        reading.catch(() => {});
        const batch = await Promise.race([reading, this.#stopped]);
        if (batch === null) break;
        for (const n of batch) this.#spawn(n.nid, n.openid);
      } catch (err) {
        if (this.#stopping) break;
        this.#log.error({ err }, 'queue read failed; retrying');
        await sleep(500, this.#abort.signal);
      }
    }
  }

  async #claimLoop(): Promise<void> {
    const everyMs = Math.max(100, Math.floor(this.#opts.claimIdleMs / 2));
    let lastPrune = Date.now();
    while (!this.#stopping) {
      try {
        const free = this.#free();
        if (free > 0) {
          const claimed = await this.#queue.claimIdle(this.#opts.consumer, this.#opts.claimIdleMs, free);
          for (const n of claimed) {
            if (this.#active.has(n.nid)) continue;
            this.#metrics.claimed.inc();
            this.#log.info({ openid: n.openid }, 'claimed work left by a stopped worker');
            this.#spawn(n.nid, n.openid);
          }
        }
        if (Date.now() - lastPrune > 10 * 60_000) {
          lastPrune = Date.now();
          await this.#queue.pruneConsumers(
            Math.max(3_600_000, this.#opts.claimIdleMs * 10),
            this.#opts.consumer,
          );
        }
      } catch (err) {
        if (this.#stopping) break;
        this.#log.error({ err }, 'claiming idle work failed; retrying');
      }
      await sleep(everyMs, this.#abort.signal);
      if (this.#stopping) break;
    }
  }

  #spawn(nid: string, openid: string): void {
    if (this.#active.has(nid)) return;
    const p = this.#drain(nid, openid)
      .catch((err) => this.#log.error({ err, openid }, 'draining a user inbox failed; it will be retried'))
      .finally(() => {
        this.#active.delete(nid);
        this.#wake();
      });
    this.#active.set(nid, p);
  }

  async #drain(nid: string, openid: string): Promise<void> {
    const consumer = this.#opts.consumer;
    const token = leaseToken(nid, consumer);
    if (!openid) {
      await this.#queue.finish('', token, consumer, nid, 'ack');
      return;
    }
    const leaseMs = this.#opts.claimIdleMs;
    if (!(await this.#queue.acquireLease(openid, token, leaseMs, consumer, nid))) {
      // Another drain holds this user and will see the entry behind this notification (its own
      // notification stays pending until it is done, so if it dies, that one is claimed and the
      // drain continued); or another process claimed this notification meanwhile.
      await this.#queue.finish(openid, token, consumer, nid, 'ack');
      return;
    }
    let lost = false;
    // A renewal still in flight when the drain ends finds the lease released: not a loss.
    let ended = false;
    const renew = setInterval(
      () => {
        this.#queue
          .renewLease(openid, token, leaseMs, consumer, nid)
          .then((ok) => {
            if (!ok && !lost && !ended) {
              lost = true;
              this.#log.warn({ openid }, 'lost the lease on a user; another worker continues');
            }
          })
          .catch((err) => this.#log.warn({ err, openid }, 'renewing a lease failed'));
      },
      Math.max(50, Math.floor(leaseMs / 3)),
    );
    // The entry processed last, deleted by the next advance() (one round trip per entry).
    let done: QueueEntry | null = null;
    try {
      for (;;) {
        if (this.#stopping || lost) break;
        // Acks first: while pushes pile up, steps go one at a time (see PushPressure).
        const step = await this.#pressure?.admit(this.#abort.signal);
        if (step?.deferred) this.#metrics.deferredSteps.inc();
        try {
          if (this.#stopping || lost) break;
          const next = await this.#queue.advance(openid, done?.id ?? null, token, LEDGER_TTL_S);
          done = null;
          if (next === 'lost') {
            if (!lost) this.#log.warn({ openid }, 'lost the lease on a user; another worker continues');
            lost = true;
            break;
          }
          if (!next) {
            if (await this.#queue.finish(openid, token, consumer, nid, 'drained')) return;
            continue;
          }
          if (!(await this.#process(next.entry, next.attempt))) break;
          done = next.entry;
        } finally {
          step?.done();
        }
      }
      if (done) await this.#queue.complete(done);
      // Hand back (re-notify when entries are left) also after losing the lease: the lease may have
      // expired without anyone taking it over, and the inbox must not be left without a notification.
      await this.#queue.finish(openid, token, consumer, nid, 'handback');
    } finally {
      ended = true;
      clearInterval(renew);
    }
  }

  /** Processes one entry with retries; false when interrupted by shutdown (the entry stays queued). */
  async #process(entry: QueueEntry, firstAttempt: number): Promise<boolean> {
    const signal = this.#abort.signal;
    const log = deferredChild(this.#log, { openid: entry.openid, entry: entry.eid, kind: entry.kind });
    for (let n = 0; ; n++) {
      const attempt = n === 0 ? firstAttempt : await this.#attempts.attempt(entry.eid);
      const ctx: EntryContext = { attempt, signal, log };
      if (attempt > this.#opts.maxAttempts) {
        await this.#handler.giveUp(entry, new Error('too many attempts'), ctx);
        this.#metrics.processed.inc({ kind: entry.kind, outcome: 'given_up' });
        return true;
      }
      try {
        await this.#handler.process(entry, ctx);
        this.#metrics.processed.inc({ kind: entry.kind, outcome: 'done' });
        return true;
      } catch (err) {
        if (signal.aborted) {
          await this.#attempts.unattempt(entry.eid);
          this.#metrics.processed.inc({ kind: entry.kind, outcome: 'handed_back' });
          return false;
        }
        if (attempt >= this.#opts.maxAttempts) {
          log.error({ err, attempt }, 'giving up on a queue entry');
          await this.#handler.giveUp(entry, err, ctx);
          this.#metrics.processed.inc({ kind: entry.kind, outcome: 'given_up' });
          return true;
        }
        log.warn({ err, attempt }, 'processing failed; retrying');
        this.#metrics.processed.inc({ kind: entry.kind, outcome: 'retried' });
        const delay = Math.min(30_000, this.#opts.retryBaseMs * 2 ** (attempt - 1));
        if (!(await sleep(delay, signal))) {
          this.#metrics.processed.inc({ kind: entry.kind, outcome: 'handed_back' });
          return false;
        }
      }
    }
  }
}
