/**
 * Acks before answers. A bridge process is one event loop shared by the pushes it acks and the
 * queue it works off. When pushes arrive faster than it can do both, every step of queue work
 * (a dispatch, a send) delays acks that WeChat is waiting for — and WeChat gives a push 5 s,
 * then retries it, then drops it. Work on the queue can wait (it is durable; that is what it is
 * for). So while many pushes wait for their ack, queue steps go one at a time, and a step that
 * cannot start waits until the pushes are acked, for at most `maxDeferMs`: answers slow down
 * under a storm of pushes, but never stop.
 */
export interface PushPressureOptions {
  /** Pushes waiting for their ack at which queue steps go one at a time. */
  highWater: number;
  /**
   * How long pressure lasts after the mark was last reached: acks leave in batches (one Redis
   * round trip answers many pushes), so the count alone drops to nothing between waves.
   */
  calmMs: number;
  /** The longest one queue step waits for acks. */
  maxDeferMs: number;
}

/** A queue step let through: call `done` when it is over. */
export interface Admission {
  /** Whether the step had to wait. */
  deferred: boolean;
  done(): void;
}

export class PushPressure {
  readonly #opts: PushPressureOptions;
  #inFlight = 0;
  #steps = 0;
  #highAt = Number.NEGATIVE_INFINITY;
  #waiters: (() => void)[] = [];
  #calmCheck: NodeJS.Timeout | undefined;

  constructor(opts: PushPressureOptions) {
    if (!(opts.highWater >= 1) || !(opts.calmMs >= 1) || !(opts.maxDeferMs >= 0)) {
      throw new RangeError('highWater and calmMs must be ≥ 1, maxDeferMs ≥ 0');
    }
    this.#opts = opts;
  }

  /** Pushes received and not answered yet. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Queue steps in progress. */
  get steps(): number {
    return this.#steps;
  }

  /** Whether pushes pile up, or did within the last `calmMs`. */
  get high(): boolean {
    return this.#inFlight >= this.#opts.highWater || Date.now() - this.#highAt < this.#opts.calmMs;
  }

  /** A push arrived. */
  enter(): void {
    this.#inFlight++;
    if (this.#inFlight >= this.#opts.highWater) this.#highAt = Date.now();
  }

  /** A push was answered (acked or refused). */
  leave(): void {
    if (this.#inFlight > 0) this.#inFlight--;
  }

  /**
   * Lets a queue step start: at once while few pushes wait or no other step runs; otherwise once
   * the pushes are acked or the running steps are over, after `maxDeferMs` at the latest, or
   * when `signal` aborts.
   */
  admit(signal?: AbortSignal): Promise<Admission> {
    if (!this.high || this.#steps === 0 || signal?.aborted) return Promise.resolve(this.#start(false));
    return new Promise((resolve) => {
      const go = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', go);
        this.#waiters = this.#waiters.filter((w) => w !== go);
        resolve(this.#start(true));
      };
      const timer = setTimeout(go, this.#opts.maxDeferMs);
      signal?.addEventListener('abort', go, { once: true });
      this.#waiters.push(go);
      this.#watchForCalm();
    });
  }

  /** While steps wait, checks every half `calmMs` whether the pushes are acked; then all go. */
  #watchForCalm(): void {
    if (this.#calmCheck) return;
    this.#calmCheck = setInterval(
      () => {
        if (this.#waiters.length > 0 && this.high) return;
        clearInterval(this.#calmCheck);
        this.#calmCheck = undefined;
        this.#release(Infinity);
      },
      Math.max(1, Math.floor(this.#opts.calmMs / 2)),
    );
    this.#calmCheck.unref();
  }

  #start(deferred: boolean): Admission {
    this.#steps++;
    let over = false;
    return {
      deferred,
      done: () => {
        if (over) return;
        over = true;
        this.#steps--;
        if (this.#waiters.length === 0) return;
        if (!this.high) this.#release(Infinity);
        else if (this.#steps === 0) this.#release(1);
      },
    };
  }

  #release(n: number): void {
    for (const go of this.#waiters.slice(0, n)) go();
  }
}
