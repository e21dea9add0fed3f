import { describe, expect, it } from 'vitest';
import { MAX_TEXT_BYTES, parseJsonBody, validateCustomMessage, validateTyping } from './outbound.js';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const v = (body: Record<string, unknown>) => validateCustomMessage(body, bytes);

describe('parseJsonBody', () => {
  it('44002 for nothing, 47001 for non-objects', () => {
    expect(parseJsonBody(undefined)).toEqual({ ok: false, errcode: 44002 });
    expect(parseJsonBody('  ')).toEqual({ ok: false, errcode: 44002 });
    expect(parseJsonBody('[1]')).toEqual({ ok: false, errcode: 47001 });
    expect(parseJsonBody('{x')).toEqual({ ok: false, errcode: 47001 });
    expect(parseJsonBody('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
  });
});

describe('validateCustomMessage', () => {
  it('text up to 2048 UTF-8 bytes', () => {
    const ok = `${'é'.repeat(1024)}`;
    expect(bytes(ok)).toBe(MAX_TEXT_BYTES);
    expect(v({ touser: 'u', msgtype: 'text', text: { content: ok } })).toMatchObject({
      ok: true,
      value: { preview: ok },
    });
    expect(v({ touser: 'u', msgtype: 'text', text: { content: `${ok}x` } })).toEqual({
      ok: false,
      errcode: 45002,
    });
    expect(v({ touser: 'u', msgtype: 'text', text: { content: '' } })).toEqual({ ok: false, errcode: 44004 });
    expect(v({ touser: 'u', msgtype: 'text', text: { content: 5 } })).toEqual({ ok: false, errcode: 47001 });
  });

  it('40003 without touser, 40008 for unknown msgtype, 40007 without media_id', () => {
    expect(v({ msgtype: 'text', text: { content: 'x' } })).toEqual({ ok: false, errcode: 40003 });
    expect(v({ touser: 'u', msgtype: 'sms' })).toEqual({ ok: false, errcode: 40008 });
    expect(v({ touser: 'u', msgtype: 'image', image: {} })).toEqual({ ok: false, errcode: 40007 });
    expect(v({ touser: 'u', msgtype: 'image', image: 'x' })).toEqual({ ok: false, errcode: 47001 });
  });

  it('keeps the kf_account and previews other types', () => {
    const r = v({
      touser: 'u',
      msgtype: 'news',
      news: { articles: [{ title: 'Hello', url: 'https://example.com' }] },
      customservice: { kf_account: 'kf2001@gh' },
    });
    expect(r).toMatchObject({
      ok: true,
      value: { msgtype: 'news', preview: '[news] Hello', kfAccount: 'kf2001@gh' },
    });
  });
});

describe('validateTyping', () => {
  it('Typing and CancelTyping only', () => {
    expect(validateTyping({ touser: 'u', command: 'Typing' })).toEqual({
      ok: true,
      value: { touser: 'u', command: 'Typing' },
    });
    expect(validateTyping({ touser: 'u', command: 'typing' })).toEqual({ ok: false, errcode: 45072 });
    expect(validateTyping({ command: 'Typing' })).toEqual({ ok: false, errcode: 40003 });
  });
});
