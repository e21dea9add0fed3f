import { utf8ByteLength } from '@moltage/wechat';
import { afterEach, describe, expect, it } from 'vitest';
import type { UserRecord } from '../adapters/user-store.js';
import { T } from '../domain/texts.js';
import { type Harness, startHarness } from '../test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function token(h: Harness, openid: string): Promise<string> {
  return (JSON.parse((await h.r.get(`user:${openid}`)) as string) as UserRecord).callbackToken;
}

async function callback(h: Harness, body: unknown, headers: Record<string, string> = {}, query = '') {
  const res = await fetch(`${h.bridgeUrl}/callback${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.text() };
}

describe('POST /callback', () => {
  it("refuses another user's token with 403, and missing or unknown tokens with 401", async () => {
    h = await startHarness();
    const a = await h.newUser();
    const b = await h.newUser();
    await h.idle();
    const tokenA = await token(h, a);
    expect((await callback(h, { openid: b, text: '冒充', token: tokenA })).status).toBe(403);
    expect(
      (await callback(h, { openid: b, text: '冒充' }, { authorization: `Bearer ${tokenA}` })).status,
    ).toBe(403);
    expect(
      (await callback(h, { metadata: { openid: b }, result: '冒充', success: true }, {}, `?token=${tokenA}`))
        .status,
    ).toBe(403);
    expect((await callback(h, { openid: b, text: '冒充' })).status).toBe(401);
    expect((await callback(h, { openid: b, text: '冒充', token: 'not-a-token' })).status).toBe(401);
    // The token's own user is fine.
    expect((await callback(h, { openid: a, text: '给 A 的', token: tokenA })).status).toBe(200);
    await h.waitTexts(a, 2);
    await h.idle();
    expect(await h.texts(b)).toHaveLength(1);
    expect((await h.texts(a))[1]).toBe('给 A 的');
    expect(h.logs()).not.toContain(tokenA);
  });

  it('refuses malformed bodies with 400', async () => {
    h = await startHarness();
    const a = await h.newUser();
    await h.idle();
    const t = await token(h, a);
    expect((await callback(h, '{not json', { authorization: `Bearer ${t}` })).status).toBe(400);
    expect((await callback(h, { openid: a, token: t })).status).toBe(400);
    expect((await callback(h, { openid: a, token: t, text: '   ' })).status).toBe(400);
    expect((await callback(h, { openid: a, token: t, text: 'x'.repeat(200_001) })).status).toBe(400);
    await h.idle();
    expect(await h.texts(a)).toHaveLength(1);
  });

  it("accepts the community plugin's payload, and its failure reports reach the user as one short message", async () => {
    h = await startHarness();
    const a = await h.newUser();
    await h.idle();
    const t = await token(h, a);
    const q = `?openid=${a}&token=${encodeURIComponent(t)}`;
    expect(
      (
        await callback(
          h,
          { success: true, result: '社区插件的回复', metadata: { thinking_time_ms: 10 } },
          {},
          q,
        )
      ).status,
    ).toBe(200);
    expect(
      (await callback(h, { success: false, error: 'Error: boom\n    at stack (x.js:1:1)' }, {}, q)).status,
    ).toBe(200);
    await h.waitTexts(a, 3);
    const texts = await h.texts(a);
    expect(texts.slice(1)).toEqual(['社区插件的回复', T.agentFailed]);
  });

  it('a callback retried with the same message id and text is delivered once', async () => {
    h = await startHarness();
    const a = await h.newUser();
    await h.idle();
    const t = await token(h, a);
    const body = { openid: a, token: t, text: '只发一次', message_id: 'm:123' };
    const [r1, r2] = await Promise.all([callback(h, body), callback(h, body)]);
    expect([r1.status, r2.status]).toEqual([200, 200]);
    await callback(h, { openid: a, token: t, text: '下一条' });
    await h.waitTexts(a, 3);
    await h.idle();
    expect((await h.texts(a)).slice(1)).toEqual(['只发一次', '下一条']);
  });
});

describe('long replies', () => {
  it('a 10 KB reply goes out as at most 5 messages of at most 2048 bytes, the last linking to a page with all of it', async () => {
    h = await startHarness();
    const a = await h.newUser();
    const paragraphs = Array.from(
      { length: 7 },
      (_, i) => `第${i + 1}段 <b>&</b> ${'这是很长的回答。'.repeat(60)}`,
    );
    const reply = paragraphs.join('\n\n');
    expect(utf8ByteLength(reply)).toBeGreaterThan(10_000);
    h.agent.behavior = () => ({ reply });
    await h.client.sendText(a, '讲个长故事');
    await h.waitTexts(a, 6);
    await h.idle();
    const texts = (await h.texts(a)).slice(1);
    expect(texts).toHaveLength(5);
    for (const t of texts) expect(utf8ByteLength(t)).toBeLessThanOrEqual(2048);
    expect(texts[0]?.startsWith('第1段')).toBe(true);
    const link = /(http:\/\/\S+\/r\/([A-Za-z0-9_-]{22}))/.exec(texts[4] as string);
    expect(link).not.toBeNull();
    const page = await fetch(link?.[1] as string);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const html = await page.text();
    expect(html).toContain('name="viewport"');
    for (const p of paragraphs) expect(html).toContain(p.replace('<b>&</b>', '&lt;b&gt;&amp;&lt;/b&gt;'));
    expect(html).not.toContain('<b>&</b>');
    const ttl = await h.r.ttl(`page:${link?.[2]}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(7 * 24 * 3600);
    // Unknown and malformed ids.
    expect((await fetch(`${h.bridgeUrl}/r/AAAAAAAAAAAAAAAAAAAAAA`)).status).toBe(404);
    expect((await fetch(`${h.bridgeUrl}/r/..%2f..%2fetc`)).status).toBe(404);
  });
});
