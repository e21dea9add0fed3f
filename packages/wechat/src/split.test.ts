import { seededRandom } from '@moltage/testkit';
import { describe, expect, it } from 'vitest';
import { WeChatError } from './errors.js';
import { MAX_TEXT_BYTES, splitReply, utf8ByteLength } from './split.js';

const WS = /\s/;

/** No lone surrogate: a split surrogate pair would leave one. */
function wellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/**
 * The documented contract: every chunk is non-empty, trimmed, valid UTF-16 (no split surrogate
 * pair), at most maxBytes, and the chunks are the text's content in order with only whitespace
 * dropped at the cuts.
 */
function checkContract(text: string, chunks: string[], maxBytes: number): void {
  let pos = 0;
  const skipWs = () => {
    while (pos < text.length && WS.test(text[pos]!)) pos++;
  };
  skipWs();
  for (const chunk of chunks) {
    expect(chunk.length).toBeGreaterThan(0);
    expect(chunk).toBe(chunk.trim());
    expect(utf8ByteLength(chunk)).toBeLessThanOrEqual(maxBytes);
    if (wellFormed(text)) expect(wellFormed(chunk)).toBe(true);
    expect(text.startsWith(chunk, pos)).toBe(true);
    pos += chunk.length;
    skipWs();
  }
  expect(pos).toBe(text.length);
  if (text.trim().length > 0) expect(chunks.length).toBeGreaterThan(0);
}

describe('utf8ByteLength', () => {
  it('counts bytes, not characters', () => {
    expect(utf8ByteLength('abc')).toBe(3);
    expect(utf8ByteLength('é')).toBe(2);
    expect(utf8ByteLength('中')).toBe(3);
    expect(utf8ByteLength('😀')).toBe(4);
    expect(utf8ByteLength('\ud800')).toBe(3);
  });
});

describe('splitReply', () => {
  it('returns short text as one trimmed chunk and blank text as nothing', () => {
    expect(splitReply('  hello  \n')).toEqual(['hello']);
    expect(splitReply('')).toEqual([]);
    expect(splitReply(' \n\t ')).toEqual([]);
    expect(splitReply('x'.repeat(MAX_TEXT_BYTES))).toEqual(['x'.repeat(MAX_TEXT_BYTES)]);
  });

  it('defaults to 2048 bytes', () => {
    const chunks = splitReply('中'.repeat(1000));
    expect(chunks.map(utf8ByteLength)).toEqual([2046, 954]);
  });

  it('prefers paragraph breaks over sentence ends', () => {
    const p1 = `${'First paragraph sentence one. '.repeat(3)}End.`;
    const p2 = 'Second paragraph. It has two sentences.';
    const chunks = splitReply(`${p1}\n\n${p2}`, utf8ByteLength(p1) + 20);
    expect(chunks).toEqual([p1, p2]);
  });

  it('cuts at a sentence end when no paragraph break fits', () => {
    const text = 'Alpha beta gamma. Delta epsilon zeta eta. Theta iota kappa lambda mu.';
    const chunks = splitReply(text, 45);
    expect(chunks).toEqual(['Alpha beta gamma. Delta epsilon zeta eta.', 'Theta iota kappa lambda mu.']);
  });

  it('does not treat decimals or domains as sentence ends', () => {
    const text = 'Pi is 3.14159 and the site is example.com today friends ok';
    const chunks = splitReply(text, 30);
    checkContract(text, chunks, 30);
    for (const c of chunks) {
      expect(c.endsWith('3.') || c.endsWith('example.')).toBe(false);
    }
  });

  it('cuts Chinese text after 。！？ and keeps closing quotes with the sentence', () => {
    const s1 = `他说：“${'今天天气很好'.repeat(10)}。”`;
    const s2 = `${'我们去公园散步吧'.repeat(10)}！`;
    const s3 = `${'好的'.repeat(20)}？`;
    const text = s1 + s2 + s3;
    const max = utf8ByteLength(s1 + s2) + 10;
    expect(splitReply(text, max)).toEqual([s1 + s2, s3]);
  });

  it('falls back to whitespace, then to character boundaries', () => {
    expect(splitReply('aaaa bbbb cccc dddd', 10)).toEqual(['aaaa bbbb', 'cccc dddd']);
    expect(splitReply('abcdefghijklmnopqrstuvwxyz', 10)).toEqual(['abcdefghij', 'klmnopqrst', 'uvwxyz']);
  });

  it('never splits a multibyte character or a surrogate pair', () => {
    const emoji = '😀'.repeat(100);
    for (const max of [4, 5, 6, 7, 9, 10, 11, 2048]) {
      const chunks = splitReply(emoji, max);
      checkContract(emoji, chunks, max);
      for (const c of chunks) expect(wellFormed(c)).toBe(true);
    }
    const chinese = '中文字符'.repeat(100);
    for (const max of [4, 5, 7, 100]) checkContract(chinese, splitReply(chinese, max), max);
  });

  it('keeps emoji ZWJ sequences and flags whole when they fit', () => {
    const family = '👨‍👩‍👧‍👦';
    const text = family.repeat(30);
    const chunks = splitReply(text, 100);
    checkContract(text, chunks, 100);
    for (const c of chunks) expect(c.length % family.length).toBe(0);
  });

  it('is byte-exact for ASCII, Chinese, emoji and mixed text', () => {
    const samples = [
      'a'.repeat(5000),
      '中'.repeat(5000),
      '😀'.repeat(5000),
      'abc中文😀é '.repeat(700),
      `${'Hello, 世界! 😀 '.repeat(200)}\n\n${'第二段。'.repeat(300)}`,
    ];
    for (const text of samples) {
      for (const max of [2048, 100, 17]) {
        const chunks = splitReply(text, max);
        checkContract(text, chunks, max);
        // Chunks are filled: every cut but the last leaves the chunk more than half full.
        for (const c of chunks.slice(0, -1)) expect(utf8ByteLength(c)).toBeGreaterThan(max / 2 - 4);
      }
    }
  });

  it('holds the contract over many random strings', () => {
    const rand = seededRandom(2048);
    const pieces = [
      'a',
      'b',
      'Z',
      '1',
      ' ',
      '  ',
      '\n',
      '\n\n',
      '.',
      '. ',
      '!',
      '?',
      '。',
      '！',
      '？',
      '…',
      '”',
      '中',
      '文',
      'é',
      '😀',
      '👍🏽',
      '🇨🇳',
      '\t',
      '\u3000',
      'e\u0301',
    ];
    for (let i = 0; i < 1500; i++) {
      let text = '';
      const n = Math.floor(rand() * 400);
      for (let j = 0; j < n; j++) text += pieces[Math.floor(rand() * pieces.length)];
      const max = 4 + Math.floor(rand() * 120);
      checkContract(text, splitReply(text, max), max);
    }
  });

  it('refuses a maxBytes that cannot hold one character', () => {
    for (const bad of [0, 3, -1, 2.5, Number.NaN]) {
      try {
        splitReply('abc', bad);
        throw new Error('accepted');
      } catch (err) {
        expect(err).toBeInstanceOf(WeChatError);
        expect((err as WeChatError).code).toBe('WECHAT_BAD_ARGUMENT');
      }
    }
  });
});
