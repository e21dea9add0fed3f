import { randomBytes } from 'node:crypto';
import { seededRandom } from '@moltage/testkit';
import { describe, expect, it } from 'vitest';
import { codeOf } from './error-code.test-helper.js';
import { WeChatError } from './errors.js';
import { buildXml, parseXml } from './xml.js';
import { parseFlatXml } from './xml-flat.js';

describe('parseXml', () => {
  it('reads CDATA and plain text children of <xml>', () => {
    expect(parseXml('<xml><A><![CDATA[x y]]></A><B>12</B><C></C><D/><E>  padded  </E></xml>')).toEqual({
      A: 'x y',
      B: '12',
      C: '',
      D: '',
      E: '  padded  ',
    });
  });

  it('accepts an XML declaration, a BOM, comments and attributes', () => {
    expect(
      parseXml(
        '\ufeff<?xml version="1.0" encoding="utf-8"?>\n<!-- c --><xml a="1"><A x="y">v</A><!-- c --></xml>\n',
      ),
    ).toEqual({
      A: 'v',
    });
  });

  it('decodes the five XML entities and character references in text, not inside CDATA', () => {
    expect(
      parseXml('<xml><A>&lt;b&gt; &amp; &quot;&apos; &#20013;&#x6587;</A><B><![CDATA[&lt;]]></B></xml>'),
    ).toEqual({
      A: `<b> & "' 中文`,
      B: '&lt;',
    });
  });

  it('keeps the first of repeated elements', () => {
    expect(parseXml('<xml><A>1</A><A>2</A></xml>')).toEqual({ A: '1' });
  });

  it('flattens nested elements with dotted keys', () => {
    expect(
      parseXml(
        '<xml><SendLocationInfo><Location_X>1.5</Location_X><Poiname><![CDATA[p]]></Poiname></SendLocationInfo></xml>',
      ),
    ).toEqual({ 'SendLocationInfo.Location_X': '1.5', 'SendLocationInfo.Poiname': 'p' });
  });

  it('keeps user text that looks like markup when it is in CDATA', () => {
    expect(parseXml('<xml><Content><![CDATA[<!DOCTYPE html><xml>&amp;</xml>]]></Content></xml>')).toEqual({
      Content: '<!DOCTYPE html><xml>&amp;</xml>',
    });
  });

  it('never creates prototype-polluting keys', () => {
    expect(codeOf(() => parseXml('<xml><__proto__><polluted>1</polluted></__proto__></xml>'))).toBe(
      'WECHAT_BAD_XML',
    );
    expect(codeOf(() => parseXml('<xml><constructor>x</constructor><A>1</A></xml>'))).toBe('WECHAT_BAD_XML');
    expect(Object.getPrototypeOf(parseXml('<xml><A>1</A></xml>'))).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  const malformed: Record<string, string> = {
    empty: '',
    'not xml': 'hello world',
    json: '{"xml": 1}',
    truncated: '<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDA',
    'unclosed root': '<xml><A>1</A>',
    'mismatched tags': '<xml><A>1</B></xml>',
    'wrong root': '<root><A>1</A></root>',
    'two roots': '<xml><A>1</A></xml><xml><A>2</A></xml>',
    'text after root': '<xml><A>1</A></xml>trailing',
    'bare ampersand': '<xml><A>a & b</A></xml>',
    'undefined entity': '<xml><A>&nbsp;</A></xml>',
    'invalid char reference': '<xml><A>&#0;</A></xml>',
    'surrogate char reference': '<xml><A>&#xD800;</A></xml>',
    'out of range char reference': '<xml><A>&#x110000;</A></xml>',
    'billion laughs':
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><xml><A>&lol2;</A></xml>',
    'external entity (XXE)':
      '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><A>&xxe;</A></xml>',
    'doctype inside root': '<xml><!DOCTYPE x><A>1</A></xml>',
    'unterminated CDATA': '<xml><A><![CDATA[abc</A></xml>',
    'huge nesting': `<xml>${'<a>'.repeat(100_000)}${'</a>'.repeat(100_000)}</xml>`,
    'too large': `<xml><A>${'x'.repeat(1_100_000)}</A></xml>`,
  };

  it.each(Object.entries(malformed))('%s → WECHAT_BAD_XML', (_name, xml) => {
    expect(codeOf(() => parseXml(xml))).toBe('WECHAT_BAD_XML');
  });

  it('non-string input → WECHAT_BAD_XML', () => {
    expect(codeOf(() => parseXml(undefined as unknown as string))).toBe('WECHAT_BAD_XML');
    expect(codeOf(() => parseXml(Buffer.from('<xml/>') as unknown as string))).toBe('WECHAT_BAD_XML');
  });

  it('random bytes, random mutations and truncations never throw anything but WeChatError', () => {
    const rand = seededRandom(0x5eed);
    const base =
      '<xml><ToUserName><![CDATA[toUser]]></ToUserName><CreateTime>1348831860</CreateTime><Content><![CDATA[你好 &]]></Content><E>&lt;&#20013;</E></xml>';
    const alphabet = '<>/![]&;#x?=-"\' CDATAxml\u0000\ufffd中😀';
    const inputs: string[] = [];
    for (let i = 0; i < 1500; i++)
      inputs.push(randomBytes(Math.floor(rand() * 300)).toString(rand() < 0.5 ? 'utf8' : 'latin1'));
    for (let i = 0; i < 1500; i++) {
      const chars = [...base];
      const edits = 1 + Math.floor(rand() * 5);
      for (let e = 0; e < edits; e++) {
        const pos = Math.floor(rand() * chars.length);
        const ch = alphabet[Math.floor(rand() * alphabet.length)]!;
        const op = rand();
        if (op < 0.4) chars[pos] = ch;
        else if (op < 0.7) chars.splice(pos, 1);
        else chars.splice(pos, 0, ch);
      }
      inputs.push(chars.join(''));
    }
    for (let i = 0; i <= base.length; i++) inputs.push(base.slice(0, i));
    let accepted = 0;
    for (const input of inputs) {
      try {
        const out = parseXml(input);
        expect(typeof out).toBe('object');
        for (const v of Object.values(out)) expect(typeof v).toBe('string');
        accepted++;
      } catch (err) {
        if (!(err instanceof WeChatError)) throw err;
        expect(err.code).toBe('WECHAT_BAD_XML');
      }
    }
    expect(accepted).toBeGreaterThan(0);
  });
});

describe('parseFlatXml (the fast path of parseXml)', () => {
  // The full parser alone: a declaration in front is ignored by it and never taken by the fast path.
  const full = (xml: string) => parseXml(`<?xml version="1.0" encoding="UTF-8"?>${xml}`);
  const flatShaped = [
    '<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId></xml>',
    '<xml>\n  <ToUserName><![CDATA[gh]]></ToUserName>\n\t<Encrypt><![CDATA[abc+/=]]></Encrypt>\n</xml>\n',
    '<xml><A><![CDATA[<b>&amp; ]] ]> <!DOCTYPE x> </A>]]></A><B>  spaced text  </B><C></C><D><![CDATA[]]></D></xml>',
    '<xml><Content><![CDATA[你好 😀 \u0000 ]]]]></Content></xml>',
    '<xml><A>1</A><A>2</A><a>3</a><_x1>4</_x1></xml>',
    '<xml></xml>',
    '<xml> </xml>  ',
  ];

  it('reads WeChat’s usual pushes exactly as the full parser does', () => {
    for (const xml of flatShaped) {
      const fast = parseFlatXml(xml);
      expect(fast, xml).not.toBeNull();
      expect(fast, xml).toEqual(full(xml));
      expect(parseXml(xml)).toEqual(fast);
    }
  });

  it('leaves everything outside that shape to the full parser', () => {
    for (const xml of [
      '<?xml version="1.0"?><xml><A>1</A></xml>',
      '<xml><A>&lt;</A></xml>',
      '<xml><A>a\r\nb</A></xml>',
      '<xml><A><![CDATA[a\r\nb]]></A></xml>',
      '<xml><A><![CDATA[x]]><![CDATA[y]]></A></xml>',
      '<xml><A> <![CDATA[x]]> </A></xml>',
      '<xml><A><B>1</B></A></xml>',
      '<xml><A x="1">1</A></xml>',
      '<xml><A/></xml>',
      '<xml><!-- c --><A>1</A></xml>',
      '<xml><A>1</B></xml>',
      '<xml><A>1</A></xml><xml></xml>',
      '<xml><A>1</A>',
      '<xml><A><![CDATA[1</A></xml>',
      '<xml><constructor>x</constructor></xml>',
      '<xml><xmlFoo>1</xmlFoo></xml>',
      '<xml><A>a>b</A></xml>',
      '<xml><A>1</A >\u00a0</xml>',
      ' <xml><A>1</A></xml>',
    ]) {
      expect(parseFlatXml(xml), xml).toBeNull();
    }
  });

  it('never takes an input the full parser refuses or reads differently (mutated pushes)', () => {
    const rand = seededRandom(0xf1a7);
    const alphabet = '<>/![]&;#x?=-"\' \t\n\rCDATAxml\u0000中😀';
    let taken = 0;
    for (let i = 0; i < 4000; i++) {
      const chars = [...(flatShaped[i % flatShaped.length] as string)];
      const edits = 1 + Math.floor(rand() * 4);
      for (let e = 0; e < edits; e++) {
        const pos = Math.floor(rand() * chars.length);
        const ch = alphabet[Math.floor(rand() * alphabet.length)] as string;
        const op = rand();
        if (op < 0.4) chars[pos] = ch;
        else if (op < 0.7) chars.splice(pos, 1);
        else chars.splice(pos, 0, ch);
      }
      const input = chars.join('');
      const fast = parseFlatXml(input);
      if (fast === null) continue;
      taken++;
      expect(fast, input).toEqual(full(input));
    }
    expect(taken).toBeGreaterThan(100);
  });
});

describe('buildXml', () => {
  it("writes strings as CDATA and numbers bare, in WeChat's layout", () => {
    expect(buildXml({ ToUserName: 'to', CreateTime: 1348831860, MsgType: 'text' })).toBe(
      '<xml><ToUserName><![CDATA[to]]></ToUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType></xml>',
    );
  });

  it("splits ']]>' across CDATA sections so parseXml(buildXml(x)) round-trips", () => {
    const tricky = [
      ']]>',
      'a]]>b',
      ']]>]]>',
      ']]]]>>',
      '<![CDATA[x]]>',
      ']',
      ']]',
      '&amp; <b> "q"',
      '',
      '   spaced   ',
      '中文😀\n\ttab',
      '<!DOCTYPE x>',
    ];
    for (const s of tricky) {
      expect(parseXml(buildXml({ Content: s, N: 5 }))).toEqual({ Content: s, N: '5' });
    }
  });

  it('round-trips random strings', () => {
    const rand = seededRandom(42);
    const alphabet = [']', ']', '>', '<', '&', '!', '[', 'C', 'a', ' ', '\n', '中', '😀', ';', '"'];
    for (let i = 0; i < 2000; i++) {
      let s = '';
      const n = Math.floor(rand() * 20);
      for (let j = 0; j < n; j++) s += alphabet[Math.floor(rand() * alphabet.length)];
      expect(parseXml(buildXml({ Content: s }))['Content']).toBe(s);
    }
  });

  it('nests objects and arrays (news articles)', () => {
    const xml = buildXml({
      ArticleCount: 1,
      Articles: { item: [{ Title: 't', Url: 'u' }] },
    });
    expect(xml).toBe(
      '<xml><ArticleCount>1</ArticleCount><Articles><item><Title><![CDATA[t]]></Title><Url><![CDATA[u]]></Url></item></Articles></xml>',
    );
    expect(parseXml(xml)).toEqual({
      ArticleCount: '1',
      'Articles.item.Title': 't',
      'Articles.item.Url': 'u',
    });
  });

  it('refuses invalid element names and non-finite numbers', () => {
    expect(codeOf(() => buildXml({ 'a b': 'x' }))).toBe('WECHAT_BAD_ARGUMENT');
    expect(codeOf(() => buildXml({ '<a>': 'x' }))).toBe('WECHAT_BAD_ARGUMENT');
    expect(codeOf(() => buildXml({ N: Number.NaN }))).toBe('WECHAT_BAD_ARGUMENT');
    expect(codeOf(() => buildXml({ N: Number.POSITIVE_INFINITY }))).toBe('WECHAT_BAD_ARGUMENT');
  });
});
