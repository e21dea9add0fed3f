import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { WeChatError } from './errors.js';
import { parseFlatXml } from './xml-flat.js';

/** Pushes from WeChat are a few KiB; anything far larger is refused before parsing. */
export const MAX_XML_CHARS = 1_000_000;
/** Nested elements below `<xml>` are flattened with dotted keys down to this depth. */
const MAX_FLATTEN_DEPTH = 4;
const MAX_NESTED_TAGS = 64;

type OrderedNode = Record<string, unknown>;

const parser = new XMLParser({
  preserveOrder: true,
  cdataPropName: '#cdata',
  textNodeName: '#text',
  trimValues: false,
  parseTagValue: false,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  processEntities: false,
  maxNestedTags: MAX_NESTED_TAGS,
});

const CDATA_RE = /<!\[CDATA\[[\s\S]*?\]\]>/g;
const ENTITY_RE = /&(#x[0-9a-fA-F]+|#[0-9]+|[A-Za-z][A-Za-z0-9]*);/g;
const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function badXml(message: string, cause?: unknown): WeChatError {
  return new WeChatError('WECHAT_BAD_XML', message, cause === undefined ? undefined : { cause });
}

function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(ENTITY_RE, (_, body: string) => {
    if (body.startsWith('#')) {
      const cp = body[1] === 'x' ? Number.parseInt(body.slice(2), 16) : Number.parseInt(body.slice(1), 10);
      const valid =
        Number.isSafeInteger(cp) &&
        (cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0x10ffff)) &&
        !(cp >= 0xd800 && cp <= 0xdfff) &&
        cp !== 0xfffe &&
        cp !== 0xffff;
      if (!valid) throw badXml(`invalid character reference &${body};`);
      return String.fromCodePoint(cp);
    }
    const named = NAMED_ENTITIES[body];
    if (named === undefined) throw badXml(`undefined entity &${body};`);
    return named;
  });
}

function tagOf(node: OrderedNode): string | undefined {
  for (const key of Object.keys(node)) {
    if (key !== ':@') return key;
  }
  return undefined;
}

/** Character data of a leaf element: text (entities decoded) and CDATA in document order. */
function leafText(children: OrderedNode[]): string {
  const hasCdata = children.some((c) => '#cdata' in c);
  let out = '';
  for (const child of children) {
    if ('#cdata' in child) {
      for (const part of child['#cdata'] as OrderedNode[]) {
        const t = part['#text'];
        if (typeof t === 'string') out += t;
      }
    } else if ('#text' in child) {
      const t = String(child['#text']);
      // Whitespace around CDATA sections is layout, not content.
      if (hasCdata && t.trim() === '') continue;
      out += decodeEntities(t);
    }
  }
  return out;
}

function flatten(children: OrderedNode[], prefix: string, depth: number, out: Record<string, string>): void {
  for (const child of children) {
    const tag = tagOf(child);
    if (tag === undefined || tag === '#text' || tag === '#cdata' || tag.startsWith('?')) continue;
    if (UNSAFE_KEYS.has(tag)) continue;
    const key = prefix + tag;
    const grand = child[tag];
    const nodes = Array.isArray(grand) ? (grand as OrderedNode[]) : [];
    const hasElements = nodes.some((n) => {
      const t = tagOf(n);
      return t !== undefined && t !== '#text' && t !== '#cdata';
    });
    if (hasElements) {
      if (depth < MAX_FLATTEN_DEPTH) flatten(nodes, `${key}.`, depth + 1, out);
      continue;
    }
    // First occurrence wins: a repeated field cannot override the one a signature covered.
    if (!Object.hasOwn(out, key)) out[key] = leafText(nodes);
  }
}

/**
 * Parses a WeChat XML document (`<xml>…</xml>`) into its child elements' text. Nested elements
 * are flattened as `Parent.Child`. DOCTYPE/ENTITY declarations, malformed or truncated input, a
 * root other than `<xml>` and excessive nesting are refused with WECHAT_BAD_XML; nothing else is
 * ever thrown.
 */
export function parseXml(xml: string): Record<string, string> {
  try {
    if (typeof xml !== 'string') throw badXml('XML input must be a string');
    if (xml.length > MAX_XML_CHARS) throw badXml(`XML is larger than ${MAX_XML_CHARS} characters`);
    const text = xml.charCodeAt(0) === 0xfeff ? xml.slice(1) : xml;
    const flat = parseFlatXml(text);
    if (flat !== null) return flat;
    // WeChat never sends DTDs; refusing `<!` outside CDATA and comments rules out entity tricks.
    if (/<!(?!--)/.test(text.replace(CDATA_RE, ''))) {
      throw badXml('DOCTYPE, ENTITY and unterminated CDATA are not allowed');
    }
    const valid = XMLValidator.validate(text);
    if (valid !== true) throw badXml(`malformed XML: ${valid.err.msg} (line ${valid.err.line})`);
    const doc = parser.parse(text) as OrderedNode[];
    const roots = doc.filter((n) => {
      const tag = tagOf(n);
      return tag !== undefined && tag !== '#text' && !tag.startsWith('?');
    });
    const root = roots[0];
    if (roots.length !== 1 || root === undefined || tagOf(root) !== 'xml') {
      throw badXml('root element must be <xml>');
    }
    const out: Record<string, string> = {};
    const children = root['xml'];
    flatten(Array.isArray(children) ? (children as OrderedNode[]) : [], '', 1, out);
    return out;
  } catch (err) {
    if (err instanceof WeChatError) throw err;
    throw badXml('malformed XML', err);
  }
}

/** A value for {@link buildXml}: strings become CDATA, numbers stay bare, objects/arrays nest. */
export type XmlValue = string | number | XmlFields | XmlFields[];
export interface XmlFields {
  [name: string]: XmlValue;
}

const XML_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function cdata(s: string): string {
  return `<![CDATA[${s.split(']]>').join(']]]]><![CDATA[>')}]]>`;
}

function buildFields(fields: XmlFields): string {
  let out = '';
  for (const [name, value] of Object.entries(fields)) {
    if (!XML_NAME_RE.test(name) || /^xml/i.test(name)) {
      throw new WeChatError('WECHAT_BAD_ARGUMENT', `invalid XML element name: ${JSON.stringify(name)}`);
    }
    if (Array.isArray(value)) {
      for (const item of value) out += `<${name}>${buildFields(item)}</${name}>`;
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) {
        throw new WeChatError('WECHAT_BAD_ARGUMENT', `element ${name} is not a finite number`);
      }
      out += `<${name}>${value}</${name}>`;
    } else if (typeof value === 'string') {
      out += `<${name}>${cdata(value)}</${name}>`;
    } else if (value !== null && typeof value === 'object') {
      out += `<${name}>${buildFields(value)}</${name}>`;
    } else {
      throw new WeChatError('WECHAT_BAD_ARGUMENT', `element ${name} has an unsupported value`);
    }
  }
  return out;
}

/**
 * Builds `<xml>…</xml>` in WeChat's style: strings as CDATA (a `]]>` inside is split across two
 * sections so it survives), numbers bare. Nested objects and arrays (e.g. `Articles.item`) nest.
 */
export function buildXml(fields: Record<string, string | number> | XmlFields): string {
  return `<xml>${buildFields(fields as XmlFields)}</xml>`;
}
