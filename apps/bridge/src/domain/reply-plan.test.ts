import { splitReply, utf8ByteLength } from '@moltage/wechat';
import { describe, expect, it } from 'vitest';
import { MAX_TEXT_BYTES, planReply } from './reply-plan.js';

const URL_ = 'https://bridge.example.com/r/AAAAAAAAAAAAAAAAAAAAAA';

describe('planReply', () => {
  it('sends a short reply as one message', () => {
    expect(planReply('你好', 5, splitReply, utf8ByteLength)).toEqual({ parts: ['你好'], usesPage: false });
  });

  it('sends every part when the budget allows', () => {
    const text = Array.from({ length: 3 }, (_, i) => `第${i}段。`.repeat(200)).join('\n\n');
    const plan = planReply(text, 5, splitReply, utf8ByteLength, URL_);
    expect(plan.usesPage).toBe(false);
    expect(plan.parts.length).toBeGreaterThan(1);
    for (const p of plan.parts) expect(utf8ByteLength(p)).toBeLessThanOrEqual(MAX_TEXT_BYTES);
  });

  it('ends an over-budget reply with a link, within the budget and the byte limit', () => {
    const text = '这是一段很长的回答。'.repeat(1200); // ~36 KB
    const plan = planReply(text, 5, splitReply, utf8ByteLength, URL_);
    expect(plan.usesPage).toBe(true);
    expect(plan.parts).toHaveLength(5);
    for (const p of plan.parts) expect(utf8ByteLength(p)).toBeLessThanOrEqual(MAX_TEXT_BYTES);
    expect(plan.parts[4]).toContain(URL_);
    expect(plan.parts[0]?.startsWith('这是一段很长的回答。')).toBe(true);
  });

  it('with a budget of one, sends a preview and the link', () => {
    const text = 'abc '.repeat(2000);
    const plan = planReply(text, 1, splitReply, utf8ByteLength, URL_);
    expect(plan.parts).toHaveLength(1);
    expect(plan.parts[0]).toContain(URL_);
    expect(utf8ByteLength(plan.parts[0] as string)).toBeLessThanOrEqual(MAX_TEXT_BYTES);
  });

  it('sends nothing when the budget is used up', () => {
    expect(planReply('hello', 0, splitReply, utf8ByteLength, URL_)).toEqual({ parts: [], usesPage: false });
  });
});
