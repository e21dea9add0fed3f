import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { UserRecord } from '../adapters/user-store.js';
import { type Harness, startHarness } from '../test-support/harness.js';

// Callback forgery beyond the basic cases of callback-route.int.test.ts: a user's token combined
// with another user's openid in every place the bridge reads an openid from, a bound instance's
// token, conflicting tokens, and oversized or oddly typed bodies. Another user never receives
// anything, and a refused callback changes nothing.

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function record(h: Harness, openid: string): Promise<UserRecord> {
  return JSON.parse((await h.r.get(`user:${openid}`)) as string) as UserRecord;
}

async function post(
  h: Harness,
  body: string | Buffer,
  headers: Record<string, string> = {},
  query = '',
): Promise<{ status: number; body: string }> {
  const res = await fetch(`${h.bridgeUrl}/callback${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: res.status, body: await res.text() };
}

/** POSTs `size` bytes chunked (no content-length), as a client streaming a huge body would. */
function postChunked(url: string, size: number, contentType: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: 'POST',
        agent: false,
        headers: { 'content-type': contentType },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') resolve(-1);
      else reject(err);
    });
    const chunk = Buffer.alloc(64 * 1024, 'a');
    req.write('{"text":"');
    for (let sent = 0; sent < size; sent += chunk.length) req.write(chunk);
    req.end('"}');
  });
}

async function keys(h: Harness): Promise<string[]> {
  return (await h.r.keys('*')).filter((k) => !k.startsWith('wechat:token:')).sort();
}

describe('POST /callback against forgery', () => {
  it("no combination of one user's token with another user's openid reaches the other user", async () => {
    h = await startHarness({ env: { BIND_ALLOW_PRIVATE: 'true' } });
    h.agent.tokens = null;
    const a = await h.newUser();
    const b = await h.newUser();
    // A binds an instance: A now has a second (bound) callback token.
    await h.client.sendText(a, `bind ${h.agent.url} a-instance-token`);
    await h.waitTexts(a, 2);
    await h.idle();
    const recA = await record(h, a);
    const vmTokenA = recA.callbackToken;
    const boundTokenA = recA.binding?.callbackToken as string;
    expect(boundTokenA).toBeTruthy();
    const vmTokenB = (await record(h, b)).callbackToken;
    const before = await keys(h);

    const attempts: [string, Record<string, unknown>, Record<string, string>, string][] = [];
    for (const t of [vmTokenA, boundTokenA]) {
      attempts.push(
        ['body openid', { openid: b, text: 'x', token: t }, {}, ''],
        [
          'metadata.openid',
          { metadata: { openid: b }, result: 'x', success: true, callback_token: t },
          {},
          '',
        ],
        ['query openid', { text: 'x' }, { authorization: `Bearer ${t}` }, `?openid=${b}`],
        ['query openid+token', { text: 'x' }, {}, `?openid=${b}&token=${t}`],
        ['body openid vs query openid', { openid: a, text: 'x', token: t }, {}, `?openid=${b}`],
        ['query openid vs body openid', { openid: b, text: 'x', token: t }, {}, `?openid=${a}`],
        ['metadata vs body openid', { openid: a, metadata: { openid: b }, text: 'x', token: t }, {}, ''],
        ['openid array', { openid: [a, b], text: 'x', token: t }, {}, ''],
        ['openid object', { openid: { toString: b }, text: 'x', token: t }, {}, ''],
        ['duplicate query openid', { text: 'x', token: t }, {}, `?openid=${a}&openid=${b}`],
        [
          'B token in body, A token in header',
          { openid: b, text: 'x', token: 'forged' },
          { authorization: `Bearer ${t}` },
          '',
        ],
        ['token array', { openid: b, text: 'x', token: [t, vmTokenB] }, {}, ''],
        ['case-changed token', { openid: a, text: 'x', token: t.toUpperCase() }, {}, ''],
        ['token prefix', { openid: a, text: 'x', token: t.slice(0, -1) }, {}, ''],
        ['token with whitespace', { openid: a, text: 'x', token: ` ${t} ` }, {}, ''],
      );
    }
    const outcomes: { name: string; status: number; text: string }[] = [];
    for (const [i, [name, body, headers, query]] of attempts.entries()) {
      // A distinct text per attempt (identical callbacks are deduplicated).
      const text = `forged-${i}`;
      const res = await post(h, JSON.stringify(body).replaceAll('"x"', JSON.stringify(text)), headers, query);
      outcomes.push({ name, status: res.status, text });
    }
    // Never a 5xx.
    expect(outcomes.filter((o) => o.status >= 500)).toEqual([]);
    // Every form that names B anywhere, or an openid that is not one string, is refused outright
    // (403 or 400); the token forms are refused (401) unless they carry A's exact token and name
    // nobody else.
    const conflicts = outcomes.filter((o) =>
      [
        'body openid',
        'metadata.openid',
        'query openid',
        'query openid+token',
        'body openid vs query openid',
        'query openid vs body openid',
        'metadata vs body openid',
        'openid array',
        'openid object',
        'duplicate query openid',
        'B token in body, A token in header',
      ].includes(o.name),
    );
    expect(conflicts.filter((o) => o.status < 400)).toEqual([]);
    await h.idle();
    // B got nothing beyond the welcome; A got nothing beyond the welcome and the bind answer,
    // except what a well-formed callback naming A with A's token may deliver (none of the above is).
    expect(await h.texts(b)).toHaveLength(1);
    const textsA = await h.texts(a);
    // Every attempt above is a forgery of some kind: none is accepted, nothing reaches A either,
    // and nothing in Redis changed.
    const accepted = outcomes.filter((o) => o.status === 200).map((o) => o.name);
    expect(accepted).toEqual([]);
    expect(textsA.filter((t) => t.startsWith('forged-'))).toEqual([]);
    expect(await keys(h)).toEqual(before);
    expect(h.logs()).not.toContain(vmTokenA);
    expect(h.logs()).not.toContain(boundTokenA);
  }, 60_000);

  it('oversized and oddly typed bodies are refused with 413/400 and change nothing', async () => {
    h = await startHarness();
    const a = await h.newUser();
    await h.idle();
    const t = (await record(h, a)).callbackToken;
    const before = await keys(h);
    const auth = { authorization: `Bearer ${t}` };
    // Just over the 1 MiB limit with a content-length, and 8 MiB streamed chunked.
    const big = Buffer.from(JSON.stringify({ openid: a, text: 'x'.repeat(1024 * 1024) }));
    const sized = await post(h, big, auth);
    expect([400, 413]).toContain(sized.status);
    const streamed = await postChunked(
      `${h.bridgeUrl}/callback?token=${t}`,
      8 * 1024 * 1024,
      'application/json',
    );
    expect([400, 413, -1]).toContain(streamed);
    // Deeply nested JSON, a JSON bomb of keys, and non-JSON content types.
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const deepRes = await post(h, deep, auth);
    expect(deepRes.status).toBeGreaterThanOrEqual(400);
    expect(deepRes.status).toBeLessThan(500);
    const manyKeys = `{${Array.from({ length: 50_000 }, (_, i) => `"k${i}":1`).join(',')}}`;
    const manyRes = await post(h, manyKeys, auth);
    expect(manyRes.status).toBe(400);
    for (const ct of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
    ]) {
      const res = await post(h, JSON.stringify({ openid: a, text: 'odd type' }), {
        ...auth,
        'content-type': ct,
      });
      expect(res.status, ct).toBeGreaterThanOrEqual(400);
      expect(res.status, ct).toBeLessThan(500);
    }
    const proto = await post(
      h,
      '{"__proto__":{"openid":"x"},"constructor":{"prototype":{"text":"p"}}}',
      auth,
    );
    expect(proto.status).toBe(400);
    expect((await fetch(`${h.bridgeUrl}/health`)).status).toBe(200);
    await h.idle();
    expect(await keys(h)).toEqual(before);
    expect(await h.texts(a)).toHaveLength(1);
  }, 60_000);
});
