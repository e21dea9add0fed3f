import { WeChatError } from './errors.js';

/** WeChat's limit for one customer-service text message, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 2048;

/** UTF-8 length of a string as WeChat counts it (lone surrogates count as U+FFFD, 3 bytes). */
export function utf8ByteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function codePointBytes(cp: number): number {
  if (cp < 0x80) return 1;
  if (cp < 0x800) return 2;
  if (cp < 0x10000) return 3;
  return 4;
}

/** UTF-16 index of the longest prefix of `s` that fits in `maxBytes`, on a code point boundary. */
function fitIndex(s: string, maxBytes: number): number {
  let bytes = 0;
  let i = 0;
  while (i < s.length) {
    const cp = s.codePointAt(i)!;
    const b = codePointBytes(cp);
    if (bytes + b > maxBytes) break;
    bytes += b;
    i += cp > 0xffff ? 2 : 1;
  }
  return i;
}

type Boundary = (window: string) => number[];

function cuts(re: RegExp, at: 'start' | 'end'): Boundary {
  return (window) => {
    const out: number[] = [];
    for (const m of window.matchAll(re)) out.push(at === 'start' ? m.index : m.index + m[0].length);
    return out;
  };
}

// Boundary kinds in order of preference. A cut is a UTF-16 index; whitespace around it is dropped.
const BOUNDARIES: Boundary[] = [
  // paragraph: a blank line
  cuts(/\n[^\S\n]*\n/g, 'start'),
  // line break
  cuts(/\n/g, 'start'),
  // sentence: CJK terminators need no following space; ASCII ones must be followed by whitespace
  // (so "3.14" and "example.com" are not sentence ends). Closing quotes/brackets stay with the sentence.
  cuts(/[。！？；…]+[”’"'）)】」』》]*|[.!?;]+[”’"')\]]*(?=\s)/gu, 'end'),
  // any whitespace
  cuts(/\s+/g, 'start'),
];

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** The last grapheme-cluster boundary at or before `limit`; the code point boundary when one cluster is too long. */
function hardCut(s: string, limit: number): number {
  let best = 0;
  for (const seg of graphemes.segment(s.slice(0, limit + 64))) {
    if (seg.index > limit) break;
    best = seg.index;
  }
  return best > 0 ? best : limit;
}

function chooseCut(rest: string, limit: number): number {
  // Look a little past the limit so that a boundary exactly at the limit (and the lookahead of
  // ASCII sentence ends) is seen; cuts past the limit are discarded.
  const window = rest.slice(0, limit + 16);
  const half = Math.ceil(limit / 2);
  for (const minCut of [half, 1]) {
    for (const boundary of BOUNDARIES) {
      let best = -1;
      for (const c of boundary(window)) if (c >= minCut && c <= limit && c > best) best = c;
      if (best > 0) return best;
    }
  }
  return hardCut(rest, limit);
}

/**
 * Splits a reply into chunks of at most `maxBytes` UTF-8 bytes (default 2048, WeChat's limit
 * for one text message).
 *
 * Cuts prefer, in this order, a blank line (paragraph), a line break, the end of a sentence
 * (。！？；… and . ! ? ; followed by whitespace, with closing quotes), then any whitespace, then a
 * grapheme-cluster boundary; a boundary is only taken in the first pass when it keeps the chunk
 * at least half full. A multibyte character or surrogate pair is never split.
 *
 * Separators: each chunk is trimmed, so whitespace at a cut (and around the whole text) is
 * dropped; every other character is kept, in order. Whitespace-only text gives `[]`.
 */
export function splitReply(text: string, maxBytes: number = MAX_TEXT_BYTES): string[] {
  if (!Number.isInteger(maxBytes) || maxBytes < 4) {
    throw new WeChatError('WECHAT_BAD_ARGUMENT', 'maxBytes must be an integer of at least 4');
  }
  const chunks: string[] = [];
  let rest = text.trim();
  while (rest.length > 0) {
    if (utf8ByteLength(rest) <= maxBytes) {
      chunks.push(rest);
      break;
    }
    const limit = fitIndex(rest, maxBytes);
    const cut = chooseCut(rest, limit);
    const chunk = rest.slice(0, cut).trimEnd();
    chunks.push(chunk);
    rest = rest.slice(cut).trimStart();
  }
  return chunks;
}
