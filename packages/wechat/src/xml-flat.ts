/** Element names that must never become properties of a parsed document: left to the full parser. */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const FLAT_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Plain (non-CDATA) text the fast path takes as is: no markup, entities or line-end normalisation. */
const FLAT_TEXT_RE = /^[^<>&\r]*$/;

function skipLayout(text: string, i: number): number {
  let j = i;
  for (;;) {
    const c = text.charCodeAt(j);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a) return j;
    j++;
  }
}

/**
 * The shape of (almost) every push WeChat sends, read without a general XML parser: `<xml>`, then
 * leaf elements each holding one CDATA section or plain text (no entities, no markup), separated
 * by spaces, tabs or newlines, then `</xml>`. Returns null for anything else — nested elements,
 * attributes, declarations, comments, entities, `\r`, several CDATA sections in one element, any
 * malformation — which `parseXml` hands to the full parser. What this accepts, the full
 * parser accepts with the same result (xml.test.ts compares the two).
 */
export function parseFlatXml(text: string): Record<string, string> | null {
  if (!text.startsWith('<xml>')) return null;
  const out: Record<string, string> = {};
  let i = 5;
  for (;;) {
    i = skipLayout(text, i);
    if (text.startsWith('</xml>', i)) return skipLayout(text, i + 6) === text.length ? out : null;
    if (text.charCodeAt(i) !== 0x3c) return null;
    const nameEnd = text.indexOf('>', i + 1);
    if (nameEnd < 0) return null;
    const name = text.slice(i + 1, nameEnd);
    if (!FLAT_NAME_RE.test(name) || /^xml/i.test(name) || UNSAFE_KEYS.has(name)) return null;
    i = nameEnd + 1;
    let value: string;
    if (text.startsWith('<![CDATA[', i)) {
      const end = text.indexOf(']]>', i + 9);
      if (end < 0) return null;
      value = text.slice(i + 9, end);
      if (value.includes('\r')) return null;
      i = end + 3;
    } else {
      const lt = text.indexOf('<', i);
      if (lt < 0) return null;
      value = text.slice(i, lt);
      if (!FLAT_TEXT_RE.test(value)) return null;
      i = lt;
    }
    if (
      !text.startsWith('</', i) ||
      !text.startsWith(name, i + 2) ||
      text.charCodeAt(i + 2 + name.length) !== 0x3e
    ) {
      return null;
    }
    i += name.length + 3;
    // First occurrence wins, as in the full parser.
    if (!Object.hasOwn(out, name)) out[name] = value;
  }
}
