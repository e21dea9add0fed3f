import { describe, expect, it } from 'vitest';
import { FaultBoard, isFaultEndpoint } from './faults.js';

describe('FaultBoard', () => {
  it('counts faults down call by call: timeout, then 500, then errcode', () => {
    const b = new FaultBoard();
    b.set('custom_send', { errcode: 45047, errcodeTimes: 1, http500Times: 1, timeoutTimes: 1 });
    expect(b.take('custom_send').action).toEqual({ kind: 'timeout' });
    expect(b.take('custom_send').action).toEqual({ kind: 'http500' });
    expect(b.take('custom_send').action).toEqual({ kind: 'errcode', errcode: 45047 });
    expect(b.take('custom_send').action).toBeNull();
    expect(b.all()).toEqual({});
  });

  it('an errcode without a count is armed once', () => {
    const b = new FaultBoard();
    b.set('token', { errcode: -1 });
    expect(b.get('token')).toMatchObject({ errcode: -1, errcodeTimes: 1 });
    expect(b.take('token').action).toEqual({ kind: 'errcode', errcode: -1 });
    expect(b.take('token').action).toBeNull();
  });

  it('latency stays until cleared, and does not touch other endpoints', () => {
    const b = new FaultBoard();
    b.set('typing', { latencyMs: 250 });
    expect(b.take('typing')).toEqual({ latencyMs: 250, action: null });
    expect(b.take('typing').latencyMs).toBe(250);
    expect(b.take('token')).toEqual({ latencyMs: 0, action: null });
    b.clear('typing');
    expect(b.take('typing').latencyMs).toBe(0);
  });

  it('setting errcode to null disarms it; patches merge', () => {
    const b = new FaultBoard();
    b.set('token', { errcode: 40013, errcodeTimes: 3 });
    b.set('token', { latencyMs: 5 });
    expect(b.get('token')).toMatchObject({ errcode: 40013, errcodeTimes: 3, latencyMs: 5 });
    b.set('token', { errcode: null });
    expect(b.get('token')).toMatchObject({ errcode: null, errcodeTimes: 0, latencyMs: 5 });
  });

  it('knows its endpoints', () => {
    expect(isFaultEndpoint('stable_token')).toBe(true);
    expect(isFaultEndpoint('menu_create')).toBe(false);
  });
});
