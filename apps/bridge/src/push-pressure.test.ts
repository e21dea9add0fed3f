import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Admission, PushPressure } from './push-pressure.js';

/** Whether a promise has settled after pending microtasks ran. */
async function settled<T>(p: Promise<T>): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  await vi.advanceTimersByTimeAsync(0);
  return done;
}

describe('PushPressure', () => {
  // Fake timers fake Date.now too: the calm period and the deferral bound run on them.
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  const pressure = () => new PushPressure({ highWater: 4, calmMs: 200, maxDeferMs: 1000 });

  it('lets steps run side by side while few pushes wait', async () => {
    const p = pressure();
    p.enter();
    p.enter();
    const a = await p.admit();
    const b = await p.admit();
    expect([a.deferred, b.deferred]).toEqual([false, false]);
    expect(p.steps).toBe(2);
    a.done();
    b.done();
    b.done();
    expect(p.steps).toBe(0);
  });

  it('under pressure lets one step run at a time, the next when it is done', async () => {
    const p = pressure();
    for (let i = 0; i < 4; i++) p.enter();
    expect(p.high).toBe(true);
    const first = await p.admit();
    expect(first.deferred).toBe(false);
    const second = p.admit();
    const third = p.admit();
    expect(await settled(second)).toBe(false);
    first.done();
    expect(await settled(second)).toBe(true);
    expect(await settled(third)).toBe(false);
    expect((await second).deferred).toBe(true);
  });

  it('lets every waiting step go once the pushes are acked and the calm period passed', async () => {
    const p = pressure();
    for (let i = 0; i < 4; i++) p.enter();
    const running = await p.admit();
    const waiting = [p.admit(), p.admit(), p.admit()];
    for (let i = 0; i < 4; i++) p.leave();
    // Acks leave in batches: right after one, pressure still holds.
    expect(p.high).toBe(true);
    expect(await settled(waiting[0] as Promise<Admission>)).toBe(false);
    await vi.advanceTimersByTimeAsync(300);
    expect(p.high).toBe(false);
    for (const w of waiting) expect(await settled(w)).toBe(true);
    expect(p.steps).toBe(4);
    running.done();
  });

  it('never holds a step longer than maxDeferMs, however long the storm lasts', async () => {
    const p = pressure();
    for (let i = 0; i < 10; i++) p.enter();
    await p.admit();
    const waiting = p.admit();
    await vi.advanceTimersByTimeAsync(999);
    expect(await settled(waiting)).toBe(false);
    // The storm goes on: a push arrives and is acked, the mark is reached again.
    p.enter();
    p.leave();
    await vi.advanceTimersByTimeAsync(1);
    expect(await settled(waiting)).toBe(true);
    expect((await waiting).deferred).toBe(true);
    expect(p.inFlight).toBe(10);
  });

  it('lets a waiting step go when its signal aborts (shutdown)', async () => {
    const p = pressure();
    for (let i = 0; i < 4; i++) p.enter();
    await p.admit();
    const ac = new AbortController();
    const waiting = p.admit(ac.signal);
    expect(await settled(waiting)).toBe(false);
    ac.abort();
    expect(await settled(waiting)).toBe(true);
    // An aborted signal does not wait at all.
    expect((await p.admit(ac.signal)).deferred).toBe(false);
  });

  it('refuses marks that would make no sense', () => {
    expect(() => new PushPressure({ highWater: 0, calmMs: 200, maxDeferMs: 1000 })).toThrow(RangeError);
    expect(() => new PushPressure({ highWater: 4, calmMs: 0, maxDeferMs: 1000 })).toThrow(RangeError);
    expect(() => new PushPressure({ highWater: 4, calmMs: 200, maxDeferMs: -1 })).toThrow(RangeError);
  });
});
