import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type ChildService, freePort, spawnService } from '@moltage/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { loadDemoSecrets } from './up.js';

const BIN = resolve(import.meta.dirname, '../../../../bin/moltage.js');
// The tiny test image (no agent) keeps this test fast; the agent image has its own end-to-end test.
const TINY = {
  VM_IMAGE: 'tiny',
  VM_IMAGE_DIR: process.env.MOLTAGE_TEST_IMAGE_DIR ?? '/var/tmp/moltage-test-images',
};

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('moltage up (demo mode)', () => {
  let up: ChildService | undefined;
  let dataDir: string | undefined;
  afterEach(async () => {
    await up?.stop('SIGINT', 15_000);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('starts every service, prints where they are, and Ctrl-C stops everything', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'moltage-up-'));
    const simPort = await freePort();
    const env = { ...process.env, ...TINY, SIM_PORT: String(simPort), LOG_LEVEL: 'warn' };
    delete env.REDIS_URL;
    delete env.WECHAT_APPID;
    up = spawnService(process.execPath, [BIN, 'up', '--data-dir', dataDir], { env });
    await up.waitForOutput(/Press Ctrl-C/, 120_000);
    const out = up.output();
    const chat = out.match(/Chat page \(simulated WeChat\)\s+(http:\/\/\S+)/)?.[1];
    expect(chat).toBe(`http://127.0.0.1:${simPort}/`);
    const redisUrl = out.match(/Redis\s+(redis:\/\/\S+)/)?.[1];
    expect(redisUrl).toBeDefined();
    const bridge = out.match(/Bridge\s+(http:\/\/\S+)/)?.[1];
    const orch = out.match(/Orchestrator API\s+(http:\/\/\S+)/)?.[1];
    const sshLine = out.match(/ssh -p (\d+) <openid>@127\.0\.0\.1/);
    expect(sshLine).not.toBeNull();

    // Each service answers: bridge and orchestrator health, the gateway's SSH banner.
    expect((await fetch(`${bridge}/health`)).status).toBe(200);

    // The console: its row names the URL and where the token is; the token logs in, and the
    // health view reaches the orchestrator and the gateway's status port.
    const consoleRow = out.match(/Console\s+(http:\/\/\S+)\s+\(token: "adminToken" in (\S+)\)/);
    expect(consoleRow?.[1]).toBe(`${bridge}/admin`);
    expect(consoleRow?.[2]).toBe(join(dataDir, 'demo-secrets.json'));
    const { adminToken } = JSON.parse(await readFile(join(dataDir, 'demo-secrets.json'), 'utf8'));
    const login = await fetch(`${bridge}/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: adminToken }),
      redirect: 'manual',
    });
    expect(login.status).toBe(303);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
    const overview = (await (
      await fetch(`${bridge}/admin/api/overview`, { headers: { cookie } })
    ).json()) as {
      health: { orchestrator: { ok: boolean }; sshGateway: { ok: boolean; body: { status: string } } | null };
    };
    expect(overview.health.orchestrator.ok).toBe(true);
    expect(overview.health.sshGateway).toMatchObject({ ok: true, body: { status: 'ok' } });
    const health = (await (await fetch(`${orch}/health`)).json()) as { driver: string | null };
    expect(health.driver).toBe('qemu');
    const banner = await new Promise<string>((res, rej) => {
      const s = createConnection({ host: '127.0.0.1', port: Number(sshLine![1]) });
      s.once('data', (d) => {
        s.destroy();
        res(d.toString());
      });
      s.once('error', rej);
    });
    expect(banner).toMatch(/^SSH-2\.0-/);

    // The chat page is served, and the simulator pushes to the bridge port with the demo account.
    const page = await fetch(chat!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const secrets = JSON.parse(await readFile(join(dataDir, 'demo-secrets.json'), 'utf8'));
    expect(secrets.encodingAesKey).toHaveLength(43);
    expect((await stat(join(dataDir, 'demo-secrets.json'))).mode & 0o077).toBe(0);
    const account = (await (await fetch(`${chat}sim/account`)).json()) as { appId: string; mode: string };
    expect(account.appId).toBe(secrets.appId);
    expect(account.mode).toBe('safe');

    // Its Redis answers and keeps data under the data dir.
    const redisPort = Number(new URL(redisUrl!).port);
    const pong = await new Promise<string>((res, rej) => {
      const s = createConnection({ host: '127.0.0.1', port: redisPort }, () => s.write('PING\r\n'));
      s.on('data', (d) => {
        s.destroy();
        res(d.toString());
      });
      s.on('error', rej);
    });
    expect(pong).toContain('PONG');

    // Ctrl-C: every child goes away, and the command exits 0.
    const children = (await readFile(`/proc/${up.pid}/task/${up.pid}/children`, 'utf8'))
      .trim()
      .split(/\s+/)
      .map(Number)
      .filter(Boolean);
    expect(children.length).toBe(5);
    const code = await up.stop('SIGINT', 15_000);
    expect(code).toBe(0);
    expect(up.output()).toContain('stopped.');
    for (const pid of children) expect(alive(pid)).toBe(false);
    await expect(fetch(chat!)).rejects.toThrow();
  });

  it('a second run reuses the demo account, the gateway host key and the cached image', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'moltage-up-'));
    const env = { ...process.env, ...TINY, SIM_PORT: String(await freePort()), LOG_LEVEL: 'warn' };
    delete env.REDIS_URL;
    delete env.WECHAT_APPID;
    up = spawnService(process.execPath, [BIN, 'up', '--data-dir', dataDir], { env });
    await up.waitForOutput(/Press Ctrl-C/, 120_000);
    const first = await readFile(join(dataDir, 'demo-secrets.json'), 'utf8');
    const hostKey = await readFile(join(dataDir, 'ssh-gateway', 'host_key.pub'), 'utf8');
    await up.stop('SIGINT', 15_000);
    up = spawnService(process.execPath, [BIN, 'up', '--data-dir', dataDir], { env });
    await up.waitForOutput(/Press Ctrl-C/, 120_000);
    expect(up.output()).toMatch(/image is up to date/);
    expect(await readFile(join(dataDir, 'demo-secrets.json'), 'utf8')).toBe(first);
    expect(await readFile(join(dataDir, 'ssh-gateway', 'host_key.pub'), 'utf8')).toBe(hostKey);
  });

  it('adds an admin token to demo secrets written before the console existed, keeping the rest', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'moltage-up-'));
    const file = join(dataDir, 'demo-secrets.json');
    const old = {
      appId: 'wx0123456789abcdef',
      appSecret: 'a'.repeat(32),
      token: 'b'.repeat(24),
      encodingAesKey: 'c'.repeat(43),
      orchestratorToken: 'd'.repeat(48),
    };
    await writeFile(file, JSON.stringify(old), { mode: 0o600 });
    const loaded = loadDemoSecrets(dataDir);
    expect(loaded).toMatchObject(old);
    expect(loaded.adminToken).toMatch(/^[0-9a-f]{48}$/);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(loaded);
    expect((await stat(file)).mode & 0o077).toBe(0);
    expect(loadDemoSecrets(dataDir)).toEqual(loaded);
  });

  it('refuses real-WeChat mode without the other credentials, in one line', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'moltage-up-'));
    const env = { ...process.env, ...TINY, WECHAT_APPID: 'wx0123456789abcdef' };
    delete env.WECHAT_APPSECRET;
    delete env.WECHAT_TOKEN;
    delete env.BRIDGE_BASE_URL;
    up = spawnService(process.execPath, [BIN, 'up', '--data-dir', dataDir], { env });
    const code = await new Promise<number | null>((r) => up!.proc.once('exit', (c) => r(c)));
    expect(code).toBe(1);
    expect(up.output().trim()).toBe(
      'moltage: with WECHAT_APPID set, also set WECHAT_APPSECRET, WECHAT_TOKEN, BRIDGE_BASE_URL (see README: Connecting a real account)',
    );
  });
});
