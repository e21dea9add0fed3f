import { describe, expect, it } from 'vitest';
import {
  chunkText,
  lastUserTextOfChat,
  lastUserTextOfResponsesInput,
  longText,
  openAiError,
  parseDirectives,
  scriptAnswer,
} from './fake-llm.js';

describe('directives', () => {
  it('are found anywhere and removed from the echo', () => {
    const { directives, rest } = parseDirectives('[User says]: hello [[fake:delay=20]] world');
    expect(directives.delayMs).toBe(20);
    expect(rest).toBe('[User says]: hello world');
    expect(scriptAnswer('[User says]: hello [[fake:delay=20]] world')).toMatchObject({
      kind: 'text',
      text: 'Echo: [User says]: hello world',
      delayMs: 20,
    });
  });

  it('fixed text may contain brackets and newlines', () => {
    expect(scriptAnswer('x [[fake:fixed=a [b] c\nd]] y')).toMatchObject({ text: 'a [b] c\nd' });
  });

  it('error wins over the rest; bad values are ignored and reported', () => {
    expect(scriptAnswer('[[fake:fixed=x]][[fake:error=503]]')).toMatchObject({ kind: 'error', status: 503 });
    const { directives } = parseDirectives('[[fake:error=200]][[fake:long=abc]][[fake:wat=1]]');
    expect(directives.errorStatus).toBeUndefined();
    expect(directives.ignored).toEqual(['error', 'long', 'wat']);
  });

  it('no user message at all', () => {
    expect(scriptAnswer(null)).toMatchObject({ kind: 'text', text: 'Echo: (no user message)' });
  });
});

describe('longText', () => {
  it('is exactly N bytes, deterministic, with paragraphs and sentences', () => {
    for (const n of [0, 1, 17, 2048, 10_000]) {
      const t = longText(n);
      expect(Buffer.byteLength(t)).toBe(n);
      expect(longText(n)).toBe(t);
    }
    const t = longText(4000);
    expect(t.split('\n\n').length).toBeGreaterThan(1);
    expect(t).toMatch(/^[A-Z][a-z]+ .*\. [A-Z]/);
  });

  it('Chinese text never splits a character', () => {
    for (const n of [1, 2, 3, 100, 2049, 5000]) {
      const t = longText(n, 'zh');
      expect(Buffer.byteLength(t)).toBe(n);
      expect(Buffer.from(t).toString('utf8')).toBe(t);
      expect(t).not.toContain('\ufffd');
    }
    expect(longText(300, 'zh')).toContain('。');
  });
});

describe('chunkText', () => {
  it('splits into pieces that join back exactly, never inside a surrogate pair', () => {
    const text = 'Hello 🌏 world, 你好世界！ '.repeat(20);
    const chunks = chunkText(text, 10);
    expect(chunks.join('')).toBe(text);
    expect(chunks.every((c) => Array.from(c).length <= 10)).toBe(true);
    expect(chunks.every((c) => !/^[\udc00-\udfff]|[\ud800-\udbff]$/.test(c))).toBe(true);
  });
});

describe('last user text', () => {
  it('from chat messages (string or parts)', () => {
    expect(
      lastUserTextOfChat([
        { role: 'user', content: 'a' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'b' },
            { type: 'image_url', image_url: {} },
            { type: 'text', text: 'c' },
          ],
        },
        { role: 'assistant', content: 'x' },
        { role: 'tool', content: 'y' },
      ]),
    ).toBe('b\nc');
    expect(lastUserTextOfChat([{ role: 'system', content: 's' }])).toBeNull();
    expect(
      lastUserTextOfChat([
        { role: 'user', content: '你好 [[fake:fixed=hi]]' },
        { role: 'user', content: '<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nruntime facts' },
      ]),
    ).toBe('你好 [[fake:fixed=hi]]');
    // OpenClaw's envelope around the person's words is not part of what the model answers.
    expect(
      lastUserTextOfChat([
        {
          role: 'user',
          content:
            '[Wed 2026-11-25 14:09 UTC] Conversation info: ⟦openclaw:ctx⟧\n```json\n{"sender":{"id":"o1"}}\n```\n\n你好\n\nRuntime: agent=main | session=x | channel=moltage',
        },
      ]),
    ).toBe('你好');
    expect(lastUserTextOfChat('nope')).toBeNull();
  });

  it('from Responses input', () => {
    expect(lastUserTextOfResponsesInput('plain')).toBe('plain');
    expect(
      lastUserTextOfResponsesInput([
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'q1' }] },
        { type: 'function_call_output', call_id: 'c', output: 'o' },
        { role: 'user', content: 'q2' },
      ]),
    ).toBe('q2');
  });
});

describe('openAiError', () => {
  it('has OpenAI’s shape', () => {
    expect(openAiError(401).error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_api_key',
      param: null,
    });
    expect(openAiError(502).error.type).toBe('server_error');
    expect(openAiError(418).error.type).toBe('invalid_request_error');
  });
});
