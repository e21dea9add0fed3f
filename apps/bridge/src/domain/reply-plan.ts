import { longReplySuffix } from './texts.js';

/** WeChat's limit for one customer-service text message. */
export const MAX_TEXT_BYTES = 2048;

export type Splitter = (text: string, maxBytes: number) => string[];

/**
 * Decides the messages that carry a reply given how many messages may still be sent (`budget`).
 * When the reply fits, every part is sent. Otherwise the first `budget - 1` parts are sent and the
 * last message holds as much of the rest as fits plus a link to the page with the whole reply
 * (`pageUrl`, required then). Every message is ≤ `maxBytes` UTF-8 bytes.
 */
export function planReply(
  text: string,
  budget: number,
  split: Splitter,
  byteLength: (s: string) => number,
  pageUrl?: string,
  maxBytes = MAX_TEXT_BYTES,
): { parts: string[]; usesPage: boolean } {
  const parts = split(text, maxBytes);
  if (budget <= 0) return { parts: [], usesPage: false };
  if (parts.length <= budget) return { parts, usesPage: false };
  if (!pageUrl) throw new Error('planReply: a reply over budget needs a page URL');
  const head = parts.slice(0, budget - 1);
  const suffix = longReplySuffix(pageUrl);
  const room = maxBytes - byteLength(suffix);
  const rest = parts.slice(budget - 1).join('\n');
  const preview = room > 0 ? (split(rest, room)[0] ?? '') : '';
  return { parts: [...head, `${preview}${suffix}`.trimStart()], usesPage: true };
}

/** Whether `text` needs more messages than `budget` allows. */
export function needsPage(text: string, budget: number, split: Splitter, maxBytes = MAX_TEXT_BYTES): boolean {
  return budget > 0 && split(text, maxBytes).length > budget;
}
