import { describe, expect, it } from 'vitest';
import { ServiceWindows } from './service-window.js';

const H = 3_600_000;
const msg = (ref: string, at: number) => ({ ref, kind: 'text', at });

describe('customer-service windows', () => {
  it('nothing can be sent before the user acts', () => {
    const w = new ServiceWindows();
    expect(w.consume('u', 0)).toEqual({ ok: false, errcode: 45015 });
    expect(w.state('u')).toBeNull();
  });

  it('allows 5 messages per user action, counted against that action', () => {
    const w = new ServiceWindows();
    w.open('u', msg('m1', 0));
    for (let i = 1; i <= 5; i++) {
      expect(w.consume('u', i)).toEqual({ ok: true, countsAgainst: msg('m1', 0), used: i, remaining: 5 - i });
    }
    expect(w.consume('u', 6)).toEqual({ ok: false, errcode: 45047 });
  });

  it('a new action resets the budget (no adding up) and restarts the 48 hours', () => {
    const w = new ServiceWindows();
    w.open('u', msg('m1', 0));
    w.consume('u', 1);
    w.consume('u', 2);
    w.open('u', msg('m2', 40 * H));
    expect(w.state('u')).toMatchObject({ used: 0, remaining: 5, closesAt: 88 * H });
    expect(w.consume('u', 87 * H)).toMatchObject({ ok: true, countsAgainst: { ref: 'm2' } });
  });

  it('closes 48 h after the action and on unfollow', () => {
    const w = new ServiceWindows();
    w.open('u', msg('m1', 0));
    expect(w.consume('u', 48 * H).ok).toBe(true);
    expect(w.consume('u', 48 * H + 1)).toEqual({ ok: false, errcode: 45015 });
    w.open('u', msg('m2', 50 * H));
    w.close('u');
    expect(w.consume('u', 50 * H)).toEqual({ ok: false, errcode: 45015 });
  });

  it('check does not use the budget', () => {
    const w = new ServiceWindows({ budget: 1 });
    w.open('u', msg('m1', 0));
    for (let i = 0; i < 10; i++) expect(w.check('u', i).ok).toBe(true);
    expect(w.consume('u', 11).ok).toBe(true);
    expect(w.check('u', 12)).toEqual({ ok: false, errcode: 45047 });
  });

  it('window and budget are options', () => {
    const w = new ServiceWindows({ windowMs: 1000, budget: 2 });
    w.open('u', msg('m', 0));
    expect(w.consume('u', 1000).ok).toBe(true);
    expect(w.consume('u', 1000).ok).toBe(true);
    expect(w.consume('u', 1000)).toEqual({ ok: false, errcode: 45047 });
    expect(w.consume('u', 1001)).toEqual({ ok: false, errcode: 45015 });
  });
});
