import { request } from 'node:http';
import { seededRandom } from '@moltage/testkit';
import { buildXml, checkSignature, parseMessage, sha1Signature, WXBizMsgCrypt } from '@moltage/wechat';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from '../test-support/harness.js';

// Hostile input against POST /wechat: thousands of seeded random and mutated pushes (XML and
// ciphertext, signatures, query strings, content types, sizes). None may get a 5xx, crash the
// bridge, be queued, or make anything reach a user. Each case is judged first by an oracle built
// from @moltage/wechat (signature, timestamp, decryption, message parsing): a mutant that is
// still a valid push is not sent (those are the ordinary tests' business), so every case sent
// must be refused with a 4xx.

const SEED = Number(process.env.FUZZ_SEED ?? 20_251_125);
const CASES = Number(process.env.FUZZ_CASES ?? 3000);
const CONCURRENCY = 16;

let h: Harness;
let victim: string;

beforeAll(async () => {
  h = await startHarness({ mode: 'safe' });
  victim = await h.newUser();
  await h.idle();
});
afterAll(async () => {
  await h?.close();
});

interface Case {
  op: string;
  query: string;
  body: Buffer;
  contentType: string | null;
  /** Stream the body chunked (no content-length). */
  chunked?: boolean;
}

const TOKENS = [
  '<',
  '>',
  '</xml>',
  '<xml>',
  '<![CDATA[',
  ']]>',
  '&',
  '&amp;',
  '&#0;',
  '&#x110000;',
  '&#xD800;',
  '&lol;',
  '&xxe;',
  '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
  '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>',
  '<!ENTITY x "y">',
  '<?xml version="1.0" encoding="UTF-16"?>',
  '<?xml-stylesheet href="http://127.0.0.1/x"?>',
  '<!-- -->',
  '<!--',
  '\u0000',
  '\uFFFE',
  '\uD800',
  '\r\n',
  ' xmlns="http://x"',
  ' a="1"',
  '<MsgType>event</MsgType>',
  '<Event>subscribe</Event>',
  '<FromUserName>',
  '</FromUserName>',
  '<Content>',
  '<MsgId>1</MsgId>',
  '<CreateTime>99999999999999999999</CreateTime>',
  '<Encrypt>',
  '</Encrypt>',
  '=',
  '%00',
  '\\',
];

function makeCrypt(appId: string): WXBizMsgCrypt {
  const account = h.sim.account;
  return new WXBizMsgCrypt({
    token: account.token,
    encodingAesKey: account.encodingAesKey as string,
    appId,
  });
}

/** A generator of hostile cases, deterministic for a seed. */
function fuzzer(seed: number) {
  const rnd = seededRandom(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const account = h.sim.account;
  const crypt = makeCrypt(account.appId);
  const foreign = makeCrypt('wxf0reign0000000');
  let msgSeq = 0;

  const validXml = (): string => {
    msgSeq++;
    const now = Math.floor(Date.now() / 1000);
    switch (int(4)) {
      case 0:
        return buildXml({
          ToUserName: 'gh_fuzz',
          FromUserName: victim,
          CreateTime: now,
          MsgType: 'event',
          Event: pick(['subscribe', 'unsubscribe', 'CLICK']),
          EventKey: 'help',
        });
      case 1:
        return buildXml({
          ToUserName: 'gh_fuzz',
          FromUserName: victim,
          CreateTime: now,
          MsgType: 'voice',
          MediaId: 'm',
          Format: 'amr',
          Recognition: '你好',
          MsgId: String(9e15 + msgSeq),
        });
      default:
        return buildXml({
          ToUserName: 'gh_fuzz',
          FromUserName: victim,
          CreateTime: now,
          MsgType: 'text',
          Content: pick(['help', 'bind http://127.0.0.1/x t', '你好', 'ssh']),
          MsgId: String(9e15 + msgSeq),
        });
    }
  };

  const randomBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

  const mutateString = (s: string): string => {
    const rounds = 1 + int(3);
    let out = s;
    for (let i = 0; i < rounds; i++) {
      const at = int(out.length + 1);
      switch (int(8)) {
        case 0: // truncation
          out = out.slice(0, at);
          break;
        case 1: {
          // duplication of a slice
          const len = int(Math.min(64, out.length - at + 1));
          out = out.slice(0, at) + out.slice(at, at + len).repeat(1 + int(50)) + out.slice(at);
          break;
        }
        case 2: // deletion
          out = out.slice(0, at) + out.slice(at + 1 + int(16));
          break;
        case 3: // token / entity / DOCTYPE injection
          out = out.slice(0, at) + pick(TOKENS) + out.slice(at);
          break;
        case 4: {
          // deep nesting
          const depth = pick([50, 500, 5000, 20_000]);
          out = `${out.slice(0, at)}${'<a>'.repeat(depth)}x${'</a>'.repeat(int(2) ? depth : depth - 1)}${out.slice(at)}`;
          break;
        }
        case 5: // rename an element
          out = out.replace(/<(\w+)>/, `<${pick(['MsgType', 'xml', 'Encrypt', 'a b', '1x', 'x:y', ''])}>`);
          break;
        case 6: // a random character
          out = out.slice(0, at) + String.fromCharCode(int(0x10000)) + out.slice(at);
          break;
        default: // swap halves
          out = out.slice(at) + out.slice(0, at);
      }
    }
    return out;
  };

  const mutateBytes = (b: Buffer): Buffer => {
    const out = Buffer.from(b);
    const flips = 1 + int(4);
    for (let i = 0; i < flips && out.length > 0; i++) {
      const at = int(out.length);
      out[at] = (out[at] ?? 0) ^ (1 << int(8));
    }
    return out;
  };

  const plainQuery = (o: { sign?: boolean; timestamp?: string } = {}) => {
    const timestamp = o.timestamp ?? String(Math.floor(Date.now() / 1000));
    const nonce = String(int(1e9));
    return new URLSearchParams({
      timestamp,
      nonce,
      signature:
        o.sign === false
          ? sha1Signature('wrong-token', timestamp, nonce)
          : sha1Signature(account.token, timestamp, nonce),
      openid: victim,
    });
  };

  /** An encrypted envelope for `encrypt` (base64), signed correctly unless told otherwise. */
  const aes = (encrypt: string, o: { sign?: boolean; timestamp?: string } = {}) => {
    const q = plainQuery(o);
    const timestamp = q.get('timestamp') as string;
    const nonce = q.get('nonce') as string;
    q.set('encrypt_type', 'aes');
    q.set(
      'msg_signature',
      sha1Signature(o.sign === false ? 'wrong-token' : account.token, timestamp, nonce, encrypt),
    );
    return {
      query: q,
      body: `<xml><ToUserName><![CDATA[gh_fuzz]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`,
    };
  };

  const contentType = () =>
    pick([
      'text/xml',
      'text/xml',
      'application/xml',
      'application/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'text/plain; charset=gbk',
      'a/b/c',
      null,
    ]);

  return (): Case => {
    const ct = contentType();
    const op = pick([
      'random-bytes',
      'random-xmlish',
      'plain-mutated',
      'plain-mutated',
      'plain-bitflip',
      'plain-bad-signature',
      'plain-stale',
      'aes-ciphertext-bitflip',
      'aes-ciphertext-mutated',
      'aes-garbage-xml',
      'aes-garbage-xml',
      'aes-wrong-appid',
      'aes-bad-signature',
      'aes-envelope-mutated',
      'aes-random-base64',
      'query-mutated',
      'oversized',
      'oversized-chunked',
    ] as const);
    const str = (query: URLSearchParams, body: string | Buffer, chunked = false): Case => ({
      op,
      query: query.toString(),
      body: Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'),
      contentType: ct,
      chunked,
    });
    switch (op) {
      case 'random-bytes':
        return str(plainQuery(), randomBytes(int(2048)));
      case 'random-xmlish':
        return str(plainQuery(), Array.from({ length: 1 + int(40) }, () => pick(TOKENS)).join(''));
      case 'plain-mutated':
        return str(plainQuery(), mutateString(validXml()));
      case 'plain-bitflip':
        return str(plainQuery(), mutateBytes(Buffer.from(validXml())));
      case 'plain-bad-signature':
        return str(plainQuery({ sign: false }), validXml());
      case 'plain-stale':
        return str(
          plainQuery({
            timestamp: pick([
              '0',
              '1',
              String(Math.floor(Date.now() / 1000) - 301),
              String(Math.floor(Date.now() / 1000) + 3600),
              '-5',
              '1e9',
              '99999999999999',
            ]),
          }),
          validXml(),
        );
      case 'aes-ciphertext-bitflip': {
        const raw = Buffer.from(crypt.encrypt(validXml()), 'base64');
        const { query, body } = aes(mutateBytes(raw).toString('base64'));
        return str(query, body);
      }
      case 'aes-ciphertext-mutated': {
        const { query, body } = aes(mutateString(crypt.encrypt(validXml())));
        return str(query, body);
      }
      case 'aes-garbage-xml': {
        // Valid encryption (right key, right AppID, right signature) of garbage XML.
        const garbage = int(3) === 0 ? randomBytes(int(512)).toString('latin1') : mutateString(validXml());
        const { query, body } = aes(crypt.encrypt(garbage));
        return str(query, body);
      }
      case 'aes-wrong-appid': {
        const { query, body } = aes(foreign.encrypt(validXml()));
        return str(query, body);
      }
      case 'aes-bad-signature': {
        const { query, body } = aes(crypt.encrypt(validXml()), { sign: false });
        return str(query, body);
      }
      case 'aes-envelope-mutated': {
        const enc = crypt.encrypt(validXml());
        const { query } = aes(enc);
        const body = mutateString(
          `<xml><ToUserName><![CDATA[gh_fuzz]]></ToUserName><Encrypt><![CDATA[${enc}]]></Encrypt></xml>`,
        );
        return str(query, body);
      }
      case 'aes-random-base64': {
        const { query, body } = aes(randomBytes(int(4) * 16 + int(40)).toString('base64'));
        return str(query, body);
      }
      case 'query-mutated': {
        const xml = validXml();
        const q = int(2) ? plainQuery() : aes(crypt.encrypt(xml)).query;
        const body = q.has('encrypt_type') ? aes(crypt.encrypt(xml)).body : xml;
        const keys = [...q.keys()];
        const k = pick(keys);
        switch (int(4)) {
          case 0:
            q.delete(k);
            break;
          case 1:
            q.append(k, q.get(k) ?? 'x'); // duplicated parameter
            break;
          case 2:
            q.set(k, mutateString(q.get(k) ?? ''));
            break;
          default:
            q.set('encrypt_type', pick(['AES', 'raw', '', 'aes ']));
        }
        return str(q, body);
      }
      case 'oversized':
        return str(
          plainQuery(),
          validXml().replace('</xml>', `<Pad>${'x'.repeat(64 * 1024 + int(200 * 1024))}</Pad></xml>`),
        );
      default:
        return str(plainQuery(), `<xml><Content>${'y'.repeat(2 * 1024 * 1024)}</Content></xml>`, true);
    }
  };
}

/** What a correct bridge must do with the case: `true` if it is a valid push. */
function isValidPush(c: Case): boolean {
  const account = h.sim.account;
  const q = new URLSearchParams(c.query);
  const one = (k: string) => (q.getAll(k).length === 1 ? (q.get(k) as string) : '');
  const timestamp = one('timestamp');
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > 290) return false;
  if (c.body.length > 64 * 1024) return false;
  const text = c.body.toString('utf8');
  try {
    let xml = text;
    if (one('encrypt_type').toLowerCase() === 'aes') {
      xml = makeCrypt(account.appId).decryptPush(
        { msgSignature: one('msg_signature'), timestamp, nonce: one('nonce') },
        text,
      );
    } else if (!checkSignature(account.token, timestamp, one('nonce'), one('signature'))) return false;
    parseMessage(xml);
    return true;
  } catch {
    return false;
  }
}

function send(url: URL, c: Case): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (c.contentType) headers['content-type'] = c.contentType;
    if (!c.chunked) headers['content-length'] = c.body.length;
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: `/wechat?${c.query}`,
        headers,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The server may answer 4xx and close before a large body is fully written.
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') resolve({ status: -1, body: err.code });
      else reject(err);
    });
    if (c.chunked) {
      for (let i = 0; i < c.body.length; i += 64 * 1024) req.write(c.body.subarray(i, i + 64 * 1024));
      req.end();
    } else req.end(c.body);
  });
}

async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const k of await h.r.keys('*')) {
    if (k.startsWith('wechat:token:')) continue;
    const type = await h.r.type(k);
    if (type === 'string') out[k] = (await h.r.get(k)) ?? '';
    else if (type === 'stream') out[k] = `stream:${await h.r.xlen(k)}`;
    else if (type === 'hash') out[k] = JSON.stringify(await h.r.hgetall(k));
    else if (type === 'zset') out[k] = `zset:${await h.r.zcard(k)}`;
    else out[k] = type;
  }
  return out;
}

describe('POST /wechat under fuzzing', () => {
  it(`refuses ${CASES} random and mutated pushes with a 4xx, queues nothing, sends nothing and keeps answering`, async () => {
    const url = new URL(h.bridgeUrl);
    const before = await snapshot();
    const inboxBefore = await h.texts(victim);
    const next = fuzzer(SEED);
    const cases: Case[] = [];
    let validMutants = 0;
    while (cases.length < CASES) {
      const c = next();
      if (isValidPush(c)) validMutants++;
      else cases.push(c);
    }
    // The oracle must not be throwing most of the work away.
    expect(validMutants).toBeLessThan(CASES / 10);

    const statuses = new Map<number, number>();
    const byOp = new Map<string, Set<number>>();
    const unexpected: {
      op: string;
      status: number;
      body: string;
      query: string;
      contentType: string | null;
      sample: string;
    }[] = [];
    let i = 0;
    const worker = async () => {
      while (i < cases.length) {
        const c = cases[i++] as Case;
        const res = await send(url, c);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (!byOp.has(c.op)) byOp.set(c.op, new Set());
        byOp.get(c.op)?.add(res.status);
        const refused =
          (res.status >= 400 && res.status < 500) || (res.status === -1 && c.body.length > 64 * 1024);
        if (!refused || res.body === 'success') {
          unexpected.push({
            op: c.op,
            status: res.status,
            body: res.body.slice(0, 200),
            query: c.query,
            contentType: c.contentType,
            sample: c.body.toString('utf8').slice(0, 300),
          });
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    expect(unexpected, `seed ${SEED}: cases not refused with a 4xx`).toEqual([]);
    // Every operator ran and got only client errors (or a reset after an early 4xx for huge bodies).
    expect([...byOp.keys()].length).toBe(16);

    // Still alive and healthy.
    const health = await fetch(`${h.bridgeUrl}/health`);
    expect(health.status).toBe(200);
    // Nothing queued, leased, recorded or sent.
    await h.idle();
    expect(await snapshot()).toEqual(before);
    expect(await h.texts(victim)).toEqual(inboxBefore);
    expect(h.agent.requests).toHaveLength(0);
    expect(h.orch.vms.size).toBe(0);
    const sends = await h.client.calls('custom_send');
    expect(sends).toHaveLength(inboxBefore.length);
    // No failure logged at error level (a 5xx or an unhandled exception would be).
    const errors = h
      .logs()
      .trim()
      .split('\n')
      .filter((l) => l.includes('"level":50') || l.includes('"level":60'));
    expect(errors).toEqual([]);
    // And a real message afterwards is still answered.
    await h.client.sendText(victim, 'help');
    expect(await h.waitTexts(victim, inboxBefore.length + 1)).toHaveLength(inboxBefore.length + 1);
  }, 120_000);
});
