/** Milliseconds since the epoch as the simulator sees them. */
export interface Clock {
  now(): number;
}

/**
 * The simulator's rule clock: the wall clock plus an offset that tests move forward to make
 * time pass (token lifetimes, the 48-hour customer-service window). Never goes backwards.
 */
export class VirtualClock implements Clock {
  #offsetMs = 0;

  constructor(private readonly wall: () => number = Date.now) {}

  now(): number {
    return this.wall() + this.#offsetMs;
  }

  get offsetMs(): number {
    return this.#offsetMs;
  }

  /** Moves time forward by `ms` (≥ 0). */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new RangeError('clock can only advance by a finite, non-negative number of ms');
    this.#offsetMs += ms;
  }

  /** Sets the offset from the wall clock (≥ 0). */
  setOffset(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new RangeError('clock offset must be a finite, non-negative number of ms');
    this.#offsetMs = ms;
  }

  reset(): void {
    this.#offsetMs = 0;
  }
}
