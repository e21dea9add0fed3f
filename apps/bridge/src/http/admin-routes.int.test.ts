import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Overview } from '../adapters/admin-overview.js';
import { type ConsoleSession, consoleLogin, rawRequest } from '../test-support/console-client.js';
import { type Harness, postPush, startHarness, waitFor } from '../test-support/harness.js';
import { startTestOrchestrator } from '../test-support/test-orchestrator.js';

const ADMIN_TOKEN = 'console-admin-token-0123456789';

let h: Harness | undefined;
let extra: Server | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  if (extra) await new Promise((r) => extra?.close(r));
  extra = undefined;
});

async function harness(env: Record<string, string> = {}): Promise<Harness> {
  h = await startHarness({ env: { ADMIN_TOKEN, ...env } });
  return h;
}

async function login(bridgeUrl: string): Promise<ConsoleSession> {
  const { res, session } = await consoleLogin(bridgeUrl, ADMIN_TOKEN);
  expect(res.status).toBe(303);
  expect(session?.csrf).toMatch(/^[A-Za-z0-9_-]{20,}$/);
  return session as ConsoleSession;
}

async function overview(bridgeUrl: string, s: ConsoleSession): Promise<Overview> {
  const res = await rawRequest('GET', `${bridgeUrl}/admin/api/overview`, { headers: { cookie: s.cookie } });
  expect(res.status).toBe(200);
  return JSON.parse(res.body) as Overview;
}

async function page(bridgeUrl: string, s: ConsoleSession): Promise<string> {
  const res = await rawRequest('GET', `${bridgeUrl}/admin`, { headers: { cookie: s.cookie } });
  expect(res.status).toBe(200);
  return res.body;
}

function action(
  bridgeUrl: string,
  s: ConsoleSession,
  openid: string,
  act: string,
  headers: Record<string, string> = {},
) {
  return rawRequest('POST', `${bridgeUrl}/admin/vms/${openid}/${act}`, {
    headers: { cookie: s.cookie, accept: 'application/json', 'x-csrf-token': s.csrf, ...headers },
  });
}

describe('console: switched off', () => {
  it('answers 404 with the reason when ADMIN_TOKEN is unset, and keeps no message log', async () => {
    h = await startHarness();
    for (const path of ['/admin', '/admin/login', '/admin/api/overview']) {
      const res = await rawRequest('GET', `${h.bridgeUrl}${path}`);
      expect(res.status).toBe(404);
      expect(JSON.parse(res.body)).toEqual({
        error: 'console disabled: set ADMIN_TOKEN',
        code: 'BRIDGE_CONSOLE_DISABLED',
      });
    }
    const login = await consoleLogin(h.bridgeUrl, ADMIN_TOKEN);
    expect(login.res.status).toBe(404);
    const u = await h.newUser();
    await h.client.sendText(u, 'hi');
    await h.waitTexts(u, 2);
    expect(await h.r.keys('console:*')).toEqual([]);
  });

  it('refuses to start with an ADMIN_TOKEN shorter than 16 characters', async () => {
    h = await startHarness({ bridge: false });
    await expect(h.startBridge({ ADMIN_TOKEN: 'short' })).rejects.toThrow(
      'Invalid environment variable ADMIN_TOKEN: must be at least 16 characters',
    );
  });
});

describe('console: logging in', () => {
  it('shows the login form without a session and opens one with the right token', async () => {
    const { bridgeUrl } = await harness();
    const anon = await rawRequest('GET', `${bridgeUrl}/admin`);
    expect(anon.status).toBe(401);
    expect(anon.body).toContain('name="token"');
    expect(anon.headers['content-security-policy']).toContain("default-src 'none'");
    expect(anon.headers['x-frame-options']).toBe('DENY');
    const api = await rawRequest('GET', `${bridgeUrl}/admin/api/overview`);
    expect(api.status).toBe(401);
    expect(JSON.parse(api.body).code).toBe('BRIDGE_UNAUTHORIZED');

    const { res, session } = await consoleLogin(bridgeUrl, ADMIN_TOKEN);
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/admin');
    const cookie = res.headers['set-cookie']?.[0] ?? '';
    expect(cookie).toMatch(
      /^moltage_admin=[A-Za-z0-9_-]{43}; Path=\/admin; HttpOnly; SameSite=Strict; Max-Age=43200$/,
    );
    const console = await rawRequest('GET', `${bridgeUrl}/admin`, {
      headers: { cookie: session?.cookie ?? '' },
    });
    expect(console.status).toBe(200);
    expect(console.body).toContain('控制台 Console');
    expect(console.headers['cache-control']).toBe('no-store');
  });

  it('refuses a wrong token, then every attempt from that address for a while (even the right token)', async () => {
    const { bridgeUrl } = await harness();
    for (let i = 1; i <= 5; i++) {
      const { res, session } = await consoleLogin(bridgeUrl, `wrong-token-guess-${i}-xxxxxxxx`);
      expect(res.status).toBe(401);
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(res.body).toContain('Wrong token');
      expect(session).toBeNull();
    }
    const blocked = await consoleLogin(bridgeUrl, ADMIN_TOKEN);
    expect(blocked.res.status).toBe(429);
    expect(Number(blocked.res.headers['retry-after'])).toBeGreaterThan(0);
    expect(blocked.res.headers['set-cookie']).toBeUndefined();
    expect(blocked.res.body).toContain('Too many failed attempts');
    // Another address is not blocked.
    const other = await consoleLogin(bridgeUrl, ADMIN_TOKEN, { localAddress: '127.0.0.2' });
    expect(other.res.status).toBe(303);
    expect(h?.logs()).not.toContain(ADMIN_TOKEN);
    expect(h?.logs()).toContain('console login failed: wrong token');
  });

  it('refuses a login posted from another site', async () => {
    const { bridgeUrl } = await harness();
    const { res } = await consoleLogin(bridgeUrl, ADMIN_TOKEN, {
      headers: { origin: 'https://evil.example' },
    });
    expect(res.status).toBe(403);
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('marks the cookie Secure when the console is reached over the https base URL', async () => {
    const hh = await harness();
    const b = await hh.startBridge({ BRIDGE_BASE_URL: 'https://console.example.test' });
    const { res } = await consoleLogin(b.url, ADMIN_TOKEN, {
      headers: { host: 'console.example.test', origin: 'https://console.example.test' },
    });
    expect(res.status).toBe(303);
    expect(res.headers['set-cookie']?.[0]).toMatch(/; Secure$/);
  });

  it('ends the session on logout and when ADMIN_TOKEN changes', async () => {
    const hh = await harness();
    const s = await login(hh.bridgeUrl);
    // Another bridge process on the same Redis serves the same session …
    const twin = await hh.startBridge();
    expect((await rawRequest('GET', `${twin.url}/admin`, { headers: { cookie: s.cookie } })).status).toBe(
      200,
    );
    // … but not one with another token.
    const rotated = await hh.startBridge({ ADMIN_TOKEN: 'a-brand-new-admin-token-456' });
    expect((await rawRequest('GET', `${rotated.url}/admin`, { headers: { cookie: s.cookie } })).status).toBe(
      401,
    );

    const out = await rawRequest('POST', `${hh.bridgeUrl}/admin/logout`, {
      headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: `csrf=${s.csrf}`,
    });
    expect(out.status).toBe(303);
    expect(out.headers['set-cookie']?.[0]).toContain('Max-Age=0');
    expect((await rawRequest('GET', `${hh.bridgeUrl}/admin`, { headers: { cookie: s.cookie } })).status).toBe(
      401,
    );
  });
});

describe('console: what it shows', () => {
  it("shows a user's message and the agent's reply, with its delivery", async () => {
    const hh = await harness();
    const s = await login(hh.bridgeUrl);
    const u = await hh.newUser();
    await hh.client.sendText(u, '你好，控制台');
    await hh.waitTexts(u, 2);
    await hh.idle();
    const o = await overview(hh.bridgeUrl, s);
    const row = o.messages.find((m) => m.preview === '你好，控制台');
    expect(row).toMatchObject({ openid: u, status: 'replied', route: 'agent', retries: 0 });
    expect(row?.replies[0]).toMatchObject({ preview: '收到：你好，控制台', ok: true, guessed: false });
    expect(row?.replies[0]?.sends[0]).toMatchObject({ slot: 'reply', outcome: 'sent', parts: 1 });
    const welcome = o.messages.find((m) => m.kind === 'event:subscribe');
    expect(welcome?.status).toBe('answered');
    expect(o.users.rows[0]).toMatchObject({ openid: u, subscribed: true, boundUrl: null });
    expect(o.users.rows[0]?.vm?.state).toBe('running');
    expect(o.vms.rows.map((v) => v.user_id)).toEqual([u]);
    expect(Date.parse(o.vms.rows[0]?.started_at ?? '')).toBeLessThanOrEqual(Date.now());
    expect(o.health.bridge.ok).toBe(true);
    expect(o.health.orchestrator.ok).toBe(true);
    expect(o.health.wechat.token?.cached).toBe(true);
    expect(o.health.wechat.token?.expiresAt).toBeGreaterThan(Date.now());

    const html = await page(hh.bridgeUrl, s);
    expect(html).toContain('你好，控制台');
    expect(html).toContain('收到：你好，控制台');
    expect(html).toContain('已回复 replied');
    expect(html).toContain(u);
    expect(html).toMatch(
      /<td data-label="运行时长 Uptime"><div class="v"><time datetime="[^"]+" data-rel="since"/,
    );
    const partial = await rawRequest('GET', `${hh.bridgeUrl}/admin/partial`, {
      headers: { cookie: s.cookie },
    });
    expect(partial.body).toContain('收到：你好，控制台');
  });

  it('shows WeChat retries as deduplicated, a reply split into parts and an errcode', async () => {
    const hh = await harness();
    const s = await login(hh.bridgeUrl);
    const u = await hh.newUser();
    const push = hh.signedPush({
      ToUserName: 'gh',
      FromUserName: u,
      CreateTime: Math.floor(Date.now() / 1000),
      MsgType: 'text',
      Content: 'long one',
      MsgId: '880001',
    });
    hh.agent.behavior = () => ({ reply: `${'段落。'.repeat(400)}\n\n${'第二段。'.repeat(300)}` });
    expect((await postPush(hh.bridgeUrl, push)).body).toBe('success');
    expect((await postPush(hh.bridgeUrl, push)).body).toBe('success');
    await hh.waitTexts(u, 3);
    await hh.idle();
    const parts = (await hh.texts(u)).length - 1;
    expect(parts).toBeGreaterThanOrEqual(3);
    hh.agent.behavior = () => ({});
    await hh.client.setFault('custom_send', { errcode: 45015, errcodeTimes: 1 });
    await hh.client.sendText(u, 'refused');
    await waitFor(
      async () =>
        (await overview(hh.bridgeUrl, s)).messages.find((m) => m.preview === 'refused')?.status ===
        'send_failed',
      {
        timeoutMs: 10_000,
      },
    );
    const o = await overview(hh.bridgeUrl, s);
    const long = o.messages.find((m) => m.eid === 'm:880001');
    expect(long).toMatchObject({ retries: 1, status: 'replied' });
    expect(long?.replies[0]?.sends[0]).toMatchObject({ outcome: 'sent', parts, sent: parts, cut: false });
    const refused = o.messages.find((m) => m.preview === 'refused');
    expect(refused?.replies[0]?.sends[0]).toMatchObject({ outcome: 'failed', errcode: 45015 });
    const html = await page(hh.bridgeUrl, s);
    expect(html).toContain('重试去重 1 deduped');
    expect(html).toContain(`分 ${parts} 条 ${parts} parts`);
    expect(html).toContain('errcode 45015');
  });

  it('shows a bound URL without its query or token, escapes what users typed and never shows a secret', async () => {
    const hh = await harness({ BIND_ALLOW_PRIVATE: 'true' });
    const s = await login(hh.bridgeUrl);
    const vmUser = await hh.newUser();
    await hh.client.sendText(vmUser, '<script>alert("x")</script>');
    await hh.waitTexts(vmUser, 2);
    const bound = await hh.newUser();
    await hh.client.sendText(bound, 'bind http://127.0.0.1:9/hook?sig=QUERYSECRET bind-token-SECRET-42');
    await hh.waitTexts(bound, 2);
    await hh.idle();

    const html = await page(hh.bridgeUrl, s);
    const json = JSON.stringify(await overview(hh.bridgeUrl, s));
    expect(html).toContain('http://127.0.0.1:9/hook');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).not.toContain('<script>alert');

    const userRec = JSON.parse((await hh.r.get(`user:${bound}`)) as string);
    const vmRec = JSON.parse((await hh.r.get(`user:${vmUser}`)) as string);
    const wechatToken = JSON.parse((await hh.r.get(`wechat:token:${hh.env['WECHAT_APPID']}`)) as string);
    const secrets = {
      queryOfBoundUrl: 'QUERYSECRET',
      bindToken: 'bind-token-SECRET-42',
      bindCallbackToken: userRec.binding.callbackToken,
      callbackToken: vmRec.callbackToken,
      agentToken: [...hh.orch.vms.values()][0]?.agent_token,
      accessToken: wechatToken.token,
      appSecret: hh.env['WECHAT_APPSECRET'],
      wechatToken: hh.env['WECHAT_TOKEN'],
      orchestratorToken: hh.env['ORCHESTRATOR_TOKEN'],
      adminToken: ADMIN_TOKEN,
    };
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret, name).toBeTruthy();
      expect(html.includes(secret as string), `${name} in the page`).toBe(false);
      expect(json.includes(secret as string), `${name} in the JSON`).toBe(false);
    }
  });

  it("shows the SSH gateway's health and passes its metrics through to a session", async () => {
    extra = createServer((req, res) => {
      if (req.url === '/health') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'ok', redis: 'ok', connections: 3, sessions: 2 }));
      } else if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end('moltage_ssh_connections 3\n');
      } else res.writeHead(404).end();
    });
    await new Promise<void>((r) => extra?.listen(0, '127.0.0.1', r));
    const gw = `http://127.0.0.1:${(extra.address() as AddressInfo).port}`;
    const hh = await harness({ SSH_GATEWAY_STATUS_URL: gw });
    const s = await login(hh.bridgeUrl);
    const o = await overview(hh.bridgeUrl, s);
    expect(o.health.sshGateway).toMatchObject({ ok: true, body: { connections: 3, sessions: 2 } });
    expect(await page(hh.bridgeUrl, s)).toContain('连接 Connections: 3');
    const anon = await rawRequest('GET', `${hh.bridgeUrl}/admin/metrics/ssh-gateway`);
    expect(anon.status).toBe(401);
    const m = await rawRequest('GET', `${hh.bridgeUrl}/admin/metrics/ssh-gateway`, {
      headers: { cookie: s.cookie },
    });
    expect(m.status).toBe(200);
    expect(m.body).toBe('moltage_ssh_connections 3\n');
  });
});

describe('console: VM actions', () => {
  it('stops, starts and resets a VM through the orchestrator API', async () => {
    const hh = await harness();
    const s = await login(hh.bridgeUrl);
    const u = await hh.newUser();
    await hh.client.sendText(u, 'boot me');
    await hh.waitTexts(u, 2);
    const callbackToken = JSON.parse((await hh.r.get(`user:${u}`)) as string).callbackToken;
    hh.orch.requests.length = 0;

    const stop = await action(hh.bridgeUrl, s, u, 'stop');
    expect(stop.status).toBe(200);
    expect(JSON.parse(stop.body)).toEqual({ ok: true, message: `已停止 Stopped ${u}` });
    expect(hh.orch.vms.get(u)?.state).toBe('stopped');

    const start = await action(hh.bridgeUrl, s, u, 'start');
    expect(start.status).toBe(200);
    expect(hh.orch.vms.get(u)?.state).toBe('running');

    const reset = await action(hh.bridgeUrl, s, u, 'reset');
    expect(reset.status).toBe(200);
    const calls = hh.orch.requests
      .filter((r) => r.path.startsWith('/api/v1/vms'))
      .map((r) => ({ call: `${r.method} ${r.path}`, body: r.body, authorized: r.authorized }));
    const created = { user_id: u, callback_url: `${hh.bridgeUrl}/callback`, callback_token: callbackToken };
    expect(calls.filter((c) => !c.call.startsWith('GET '))).toEqual([
      { call: `POST /api/v1/vms/${u}/stop`, body: null, authorized: true },
      { call: 'POST /api/v1/vms', body: created, authorized: true },
      { call: `DELETE /api/v1/vms/${u}`, body: null, authorized: true },
      { call: 'POST /api/v1/vms', body: created, authorized: true },
    ]);
    expect(hh.logs()).toContain('console VM action');
  });

  it('refuses actions without a session, without the CSRF token, from another site, or malformed', async () => {
    const hh = await harness();
    const s = await login(hh.bridgeUrl);
    const u = await hh.newUser();
    hh.orch.requests.length = 0;
    const anon = await rawRequest('POST', `${hh.bridgeUrl}/admin/vms/${u}/stop`, {
      headers: { accept: 'application/json' },
    });
    expect(anon.status).toBe(401);
    expect((await action(hh.bridgeUrl, s, u, 'stop', { 'x-csrf-token': 'nope' })).status).toBe(403);
    expect((await action(hh.bridgeUrl, s, u, 'stop', { origin: 'https://evil.example' })).status).toBe(403);
    expect((await action(hh.bridgeUrl, s, u, 'explode')).status).toBe(404);
    expect((await action(hh.bridgeUrl, s, 'bad%20id', 'stop')).status).toBe(400);
    expect(hh.orch.requests.filter((r) => r.method !== 'GET')).toEqual([]);
    // A plain form post (no script) works with the token in the body and answers with a page.
    const form = await rawRequest('POST', `${hh.bridgeUrl}/admin/vms/${u}/start`, {
      headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
      body: `csrf=${encodeURIComponent(s.csrf)}`,
    });
    expect(form.status).toBe(200);
    expect(form.body).toContain(`已启动 Started ${u}`);
  });

  it('sends an action to the orchestrator of the host that owns the VM and lists the hosts', async () => {
    const hh = await harness();
    const s = await login(hh.bridgeUrl);
    const u = await hh.newUser();
    await hh.client.sendText(u, 'boot me');
    await hh.waitTexts(u, 2);
    const second = await startTestOrchestrator({ agentUrl: hh.agent.url, token: hh.orch.token });
    try {
      // The VM lives on host "kvm-b": its record (seen by every orchestrator) names that host.
      const vm = hh.orch.vms.get(u) as NonNullable<ReturnType<typeof hh.orch.vms.get>>;
      Object.assign(vm, { host_id: 'kvm-b', host_url: second.url });
      second.vms.set(u, vm);
      const now = new Date().toISOString();
      await hh.r.zadd('hosts', Date.now(), 'kvm-b');
      await hh.r.set(
        'host:kvm-b',
        JSON.stringify({
          host_id: 'kvm-b',
          url: second.url,
          accepting: true,
          problem: null,
          subnet: '10.0.2.0/24',
          network: 'user',
          driver: 'qemu',
          max_vms: 10,
          active_vms: 1,
          vms_mem_mib: 512,
          mem_total_mib: 8192,
          mem_available_mib: 4096,
          vcpus: 4,
          started_at: now,
          heartbeat_at: now,
          ttl_ms: 15000,
          instance: 'i-1',
          machine_id: 'm-1',
        }),
        'PX',
        15000,
      );
      hh.orch.requests.length = 0;
      expect((await action(hh.bridgeUrl, s, u, 'stop')).status).toBe(200);
      expect(second.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`POST /api/v1/vms/${u}/stop`]);
      expect(hh.orch.requests.filter((r) => r.method !== 'GET')).toEqual([]);
      const o = await overview(hh.bridgeUrl, s);
      expect(o.health.hosts).toEqual([
        expect.objectContaining({ id: 'kvm-b', accepting: true, activeVms: 1, maxVms: 10 }),
      ]);
      expect(o.vms.rows[0]).toMatchObject({ user_id: u, host_id: 'kvm-b', state: 'stopped' });
      const html = await page(hh.bridgeUrl, s);
      expect(html).toContain('主机 Host</th>');
      expect(html).toContain('<code>kvm-b</code> · 1/10 VMs');
    } finally {
      await second.close();
    }
  });

  it('says what went wrong when the orchestrator refuses or is down', async () => {
    const hh = await harness();
    const s = await login(hh.bridgeUrl);
    const missing = await action(hh.bridgeUrl, s, 'nobody-here', 'stop');
    expect(missing.status).toBe(502);
    expect(JSON.parse(missing.body).error).toContain('orchestrator answered 404');
    await hh.orch.close();
    const down = await action(hh.bridgeUrl, s, 'nobody-here', 'stop');
    expect(down.status).toBe(502);
    expect(JSON.parse(down.body).error).toContain('ECONNREFUSED');
    const o = await overview(hh.bridgeUrl, s);
    expect(o.health.orchestrator.ok).toBe(false);
    expect(o.vms.error).toContain('ECONNREFUSED');
  });
});
