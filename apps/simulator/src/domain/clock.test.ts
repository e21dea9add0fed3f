import { describe, expect, it } from 'vitest';
import { VirtualClock } from './clock.js';

describe('VirtualClock', () => {
  it('follows the wall clock plus an offset that only moves forward', () => {
    let wall = 1_000;
    const clock = new VirtualClock(() => wall);
    expect(clock.now()).toBe(1_000);
    clock.advance(500);
    wall = 1_100;
    expect(clock.now()).toBe(1_600);
    expect(clock.offsetMs).toBe(500);
    clock.setOffset(10);
    expect(clock.now()).toBe(1_110);
    clock.reset();
    expect(clock.now()).toBe(1_100);
  });

  it('refuses negative or non-finite moves', () => {
    const clock = new VirtualClock(() => 0);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    expect(() => clock.setOffset(-5)).toThrow(RangeError);
    expect(clock.offsetMs).toBe(0);
  });
});
