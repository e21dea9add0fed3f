import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { UserRecord } from '../adapters/user-store.js';
import { type StoredSshPassword, verifySshPassword } from '../domain/ssh-password.js';
import { HELP, T, WELCOME } from '../domain/texts.js';
import { type Harness, startHarness, waitFor } from '../test-support/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function user(h: Harness, openid: string): Promise<UserRecord> {
  return JSON.parse((await h.r.get(`user:${openid}`)) as string) as UserRecord;
}

/** Sends a text and returns the next message the user gets. */
async function ask(h: Harness, openid: string, text: string): Promise<string> {
  const before = (await h.client.inbox(openid)).length;
  await h.client.sendText(openid, text);
  const texts = await h.waitTexts(openid, before + 1);
  return texts[before] as string;
}

function sshKeygen(type: 'ed25519' | 'rsa' | 'ecdsa'): { line: string; fingerprint: string } {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-key-'));
  try {
    const file = join(dir, 'id');
    const args = ['-q', '-t', type, '-N', '', '-C', `test-${type}`, '-f', file];
    if (type === 'rsa') args.push('-b', '3072');
    execFileSync('ssh-keygen', args);
    const line = readFileSync(`${file}.pub`, 'utf8').trim();
    const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`])
      .toString()
      .split(' ')[1] as string;
    return { line, fingerprint };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('subscribe and unsubscribe', () => {
  it('welcomes a new follower with the help text and records the user', async () => {
    h = await startHarness();
    const u = await h.newUser();
    expect(await h.texts(u)).toEqual([WELCOME]);
    expect(WELCOME).toContain(HELP);
    await h.idle();
    const rec = await user(h, u);
    expect(rec.subscribed).toBe(true);
    expect(rec.binding).toBeNull();
    expect(Date.parse(rec.createdAt)).not.toBeNaN();
    expect(Date.parse(rec.lastSeenAt)).not.toBeNaN();
  });

  it('marks an unfollowing user and asks the orchestrator to stop the VM (keeping its data)', async () => {
    h = await startHarness();
    const u = await h.newUser();
    expect(await ask(h, u, '你好')).toBe('收到：你好');
    await h.client.unfollow(u);
    await h.idle();
    expect((await user(h, u)).subscribed).toBe(false);
    const del = h.orch.requests.find((r) => r.method === 'DELETE' && r.path === `/api/v1/vms/${u}`);
    expect(del?.authorized).toBe(true);
    expect(h.orch.vms.get(u)?.state).toBe('stopped');
    expect(await h.texts(u)).toHaveLength(2);
  });
});

describe('content', () => {
  it('uses voice recognition as text and says when voice cannot be understood', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.client.send(u, { type: 'voice', recognition: '明天天气怎么样' });
    expect((await h.waitTexts(u, 2))[1]).toBe('收到：明天天气怎么样');
    expect(h.agent.requests.at(-1)?.payload.msg_type).toBe('voice');
    await h.client.send(u, { type: 'voice' });
    expect((await h.waitTexts(u, 3))[2]).toBe(T.voiceUnsupported);
    await h.idle();
    expect(h.agent.requests).toHaveLength(1);
  });

  it('forwards image, link and location as text descriptions', async () => {
    h = await startHarness();
    const u = await h.newUser();
    h.agent.behavior = () => ({ reply: 'ok' });
    await h.client.send(u, { type: 'image', picUrl: 'https://pic.example/cat.jpg' });
    await h.client.send(u, {
      type: 'link',
      title: '好文章',
      description: '值得一读',
      url: 'https://blog.example/a',
    });
    await h.client.send(u, { type: 'location', latitude: 31.23, longitude: 121.47, label: '上海市' });
    await h.waitTexts(u, 4);
    const payloads = h.agent.requests.map((r) => r.payload);
    expect(payloads.map((p) => p.msg_type)).toEqual(['image', 'link', 'location']);
    expect(payloads[0]?.text).toContain('https://pic.example/cat.jpg');
    expect(payloads[1]?.text).toBe('[链接] 好文章\n值得一读\nhttps://blog.example/a');
    expect(payloads[2]?.text).toBe('[位置] 上海市（纬度 31.23，经度 121.47）');
  });
});

describe('commands', () => {
  it('help and status', async () => {
    h = await startHarness();
    const u = await h.newUser();
    expect(await ask(h, u, 'HELP')).toBe(HELP);
    expect(await ask(h, u, 'status')).toContain('专属环境：尚未创建');
    await ask(h, u, '你好');
    const status = await ask(h, u, 'Status');
    expect(status).toContain('专属环境：运行中');
    expect(status).toContain('绑定：未绑定');
    expect(status).toContain('SSH 公钥：0 个');
  });

  it('bind refuses loopback, private, link-local, metadata and non-http targets', async () => {
    h = await startHarness();
    const u = await h.newUser();
    const port = new URL(h.agent.url).port;
    const refused: [string, string][] = [
      [`http://127.0.0.1:${port}/webhook`, T.bindForbidden],
      ['http://10.1.2.3/webhook', T.bindForbidden],
      ['http://192.168.0.10/webhook', T.bindForbidden],
      ['http://169.254.169.254/latest/meta-data', T.bindForbidden],
      [`http://localhost:${port}/webhook`, T.bindForbidden],
      [`http://[::1]:${port}/webhook`, T.bindForbidden],
      ['http://224.0.0.1/x', T.bindForbidden],
      ['http://0x7f000001/x', T.bindForbidden],
      ['ftp://files.example.com/x', T.bindBadScheme],
      ['file:///etc/passwd', T.bindBadScheme],
      ['not-a-url', T.bindInvalid],
    ];
    for (const [url, answer] of refused) {
      expect(await ask(h, u, `bind ${url} secret-token-123`)).toBe(answer);
    }
    expect(await ask(h, u, 'bind onlyone')).toBe(T.bindUsage);
    await h.idle();
    expect((await user(h, u)).binding).toBeNull();
    expect(h.agent.requests).toHaveLength(0);
    expect(h.logs()).not.toContain('secret-token-123');
  });

  it('bind routes the chat to the user’s own instance, never echoing the token; unbind goes back to the VM', async () => {
    h = await startHarness({ env: { BIND_ALLOW_PRIVATE: 'true' } });
    h.agent.tokens = null;
    const u = await h.newUser();
    const answer = await ask(h, u, `bind ${h.agent.url}?x=1 my-instance-token`);
    expect(answer).toContain(`已绑定到你的 OpenClaw：${h.agent.url}`);
    expect(answer).not.toContain('my-instance-token');
    expect(answer).not.toContain('x=1');
    const rec = await user(h, u);
    expect(rec.binding?.token).toBe('my-instance-token');

    // The community plugin's way: POST {success, result} to the callback URL it was given.
    h.agent.behavior = () => ({ style: 'community', reply: '来自自有实例' });
    expect(await ask(h, u, '你是谁')).toBe('来自自有实例');
    const dispatched = h.agent.requests.at(-1);
    expect(dispatched?.auth).toBe('Bearer my-instance-token');
    expect(dispatched?.payload).toMatchObject({
      openid: u,
      text: '你是谁',
      task: '你是谁',
      msg_type: 'text',
      metadata: { openid: u, msg_type: 'text' },
    });
    expect(h.orch.vms.has(u)).toBe(false);
    expect(await ask(h, u, 'status')).toContain(`绑定：已绑定 ${h.agent.url}`);

    const oldCallback = String(dispatched?.payload.callback_url);
    expect(await ask(h, u, 'unbind')).toBe(T.unbindOk);
    expect((await user(h, u)).binding).toBeNull();
    // The unbound instance's callback token is revoked.
    const late = await fetch(oldCallback, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ success: true, result: 'too late' }),
    });
    expect(late.status).toBe(401);
    h.agent.behavior = () => ({});
    expect(await ask(h, u, '回到平台')).toBe('收到：回到平台');
    const vm = h.orch.vms.get(u);
    expect(h.agent.requests.at(-1)?.auth).toBe(`Bearer ${vm?.agent_token}`);
    expect(await ask(h, u, 'unbind')).toBe(T.unbindNone);
    expect(h.logs()).not.toContain('my-instance-token');
  });

  it('a bound host that later resolves to a private address is not contacted (DNS rebinding)', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await h.idle();
    // As if `bind` had succeeded while the name pointed at a public address.
    const rec = await user(h, u);
    const port = new URL(h.agent.url).port;
    const url = `http://localhost:${port}/webhook`;
    rec.binding = {
      url,
      token: 't',
      callbackToken: 'cb-token-rebinding-test',
      boundAt: new Date().toISOString(),
    };
    await h.r.set(`user:${u}`, JSON.stringify(rec));
    const answer = await ask(h, u, '你好');
    expect(answer).toContain('无法连接到你绑定的 OpenClaw');
    expect(h.agent.requests).toHaveLength(0);
  });

  it('ssh issues a one-time password, stored hashed with a short TTL, and the exact ssh line', async () => {
    h = await startHarness();
    const u = await h.newUser();
    const answer = await ask(h, u, 'ssh');
    expect(answer).toContain(`ssh -p 2222 ${u}@ssh.example.test`);
    const password = /一次性密码：(\S+)/.exec(answer)?.[1] as string;
    expect(password).toMatch(/^[A-Za-z2-9]{14}$/);
    const raw = (await h.r.get(`sshotp:${u}`)) as string;
    expect(raw).not.toContain(password);
    const stored = JSON.parse(raw) as StoredSshPassword;
    expect(stored.alg).toBe('scrypt');
    expect(await verifySshPassword(stored, password)).toBe(true);
    const ttl = await h.r.ttl(`sshotp:${u}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600);
    // A second `ssh` replaces the password.
    const again = /一次性密码：(\S+)/.exec(await ask(h, u, 'ssh'))?.[1] as string;
    expect(again).not.toBe(password);
    const replaced = JSON.parse((await h.r.get(`sshotp:${u}`)) as string) as StoredSshPassword;
    expect(await verifySshPassword(replaced, password)).toBe(false);
    expect(await verifySshPassword(replaced, again)).toBe(true);
    await h.idle();
    expect(JSON.stringify(await user(h, u))).not.toContain(again);
    expect(h.logs()).not.toContain(password);
    expect(h.logs()).not.toContain(again);
    // Nothing in Redis keeps the password in clear once it was sent.
    for (const key of await h.r.keys('ledger:*'))
      expect(JSON.stringify(await h.r.hgetall(key))).not.toContain(again);
  });

  it('sshkey stores validated OpenSSH keys (ed25519, rsa, ecdsa), lists and clears them', async () => {
    h = await startHarness();
    const u = await h.newUser();
    const keys = [sshKeygen('ed25519'), sshKeygen('rsa'), sshKeygen('ecdsa')];
    for (const k of keys) expect(await ask(h, u, `sshkey ${k.line}`)).toContain(k.fingerprint);
    const rec = await user(h, u);
    expect(rec.ssh.publicKeys.map((k) => `${k.type} ${k.key} ${k.comment}`)).toEqual(keys.map((k) => k.line));
    expect(await ask(h, u, 'sshkey')).toContain(keys[1]?.fingerprint);
    expect(await ask(h, u, 'sshkey ssh-ed25519 AAAAnotakey')).toContain('公钥无效');
    const tampered = (keys[0] as { line: string }).line.replace(/^ssh-ed25519/, 'ssh-rsa');
    expect(await ask(h, u, `sshkey ${tampered}`)).toContain('公钥无效');
    expect(await ask(h, u, 'status')).toContain('SSH 公钥：3 个');
    expect(await ask(h, u, 'sshkey clear')).toBe(T.sshkeyCleared);
    await h.idle();
    expect((await user(h, u)).ssh.publicKeys).toEqual([]);
  });

  it('reset recreates the VM through the orchestrator', async () => {
    h = await startHarness();
    const u = await h.newUser();
    await ask(h, u, '你好');
    const before = h.orch.requests.length;
    expect(await ask(h, u, 'reset')).toBe(T.resetOk);
    const calls = h.orch.requests.slice(before).map((r) => `${r.method} ${r.path}`);
    expect(calls[0]).toBe(`DELETE /api/v1/vms/${u}`);
    expect(calls).toContain('POST /api/v1/vms');
    await waitFor(() => h?.orch.vms.get(u)?.state === 'running');
  });
});
