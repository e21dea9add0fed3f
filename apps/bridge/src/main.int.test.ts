import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnService } from '@moltage/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DIST_MAIN, type Harness, startHarness, waitFor } from './test-support/harness.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

let h: Harness | undefined;

beforeAll(() => {
  // The tests run the bridge as a real process from its build output.
  execFileSync('npx', ['tsc', '-b', 'apps/bridge'], { cwd: REPO, stdio: 'pipe' });
}, 120_000);

afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A reply of three customer-service messages (each a ~1.9 KB paragraph). */
const LONG_REPLY = ['第一段', '第二段', '第三段']
  .map((p) => `${p}：${'内容很长。'.repeat(120)}`)
  .join('\n\n');

describe('the bridge process', () => {
  it('refuses to start without required variables, naming them', async () => {
    const svc = spawnService(process.execPath, [DIST_MAIN], { env: { PATH: process.env['PATH'] ?? '' } });
    const code = await new Promise<number | null>((r) => svc.proc.once('exit', (c) => r(c)));
    expect(code).toBe(1);
    expect(svc.output()).toContain('Missing required environment variable: WECHAT_APPID');
    expect(svc.output()).toContain('Missing required environment variable: WECHAT_TOKEN');
  });

  it('refuses a malformed EncodingAESKey', async () => {
    const svc = spawnService(process.execPath, [DIST_MAIN], {
      env: {
        PATH: process.env['PATH'] ?? '',
        WECHAT_APPID: 'wx1',
        WECHAT_APPSECRET: 's',
        WECHAT_TOKEN: 't',
        BRIDGE_BASE_URL: 'http://127.0.0.1:1',
        WECHAT_ENCODING_AES_KEY: 'too-short',
      },
    });
    const code = await new Promise<number | null>((r) => svc.proc.once('exit', (c) => r(c)));
    expect(code).toBe(1);
    expect(svc.output()).toMatch(/Invalid environment variable WECHAT_ENCODING_AES_KEY/);
  });

  it('SIGKILL between the ack and the reply: after a restart the message is answered exactly once', async () => {
    h = await startHarness({ bridge: false });
    let calls = 0;
    // The first delivery to the agent never gets an answer: the bridge dies while waiting for it.
    h.agent.behavior = () => (calls++ === 0 ? { hold: true } : {});
    const first = await h.spawnBridge();
    h.pointSimAt(first.url);
    const u = await h.newUser();
    const push = await h.client.sendText(u, '你好');
    expect(push.attempts[0]?.body).toBe('success');
    await waitFor(() => h?.agent.requests.length === 1, { what: 'the dispatch to the agent' });
    await first.svc.stop('SIGKILL');

    const second = await h.spawnBridge();
    h.pointSimAt(second.url);
    expect((await h.waitTexts(u, 2, 20_000))[1]).toBe('收到：你好');
    await h.client.sendText(u, '再见');
    await h.waitTexts(u, 3, 20_000);
    await h.idle();
    expect((await h.texts(u)).slice(1)).toEqual(['收到：你好', '收到：再见']);
    expect(h.agent.requests.filter((r) => r.accepted && r.payload.text === '你好')).toHaveLength(1);
  });

  it('SIGKILL in the middle of a multi-part reply: parts already sent are not sent again', async () => {
    h = await startHarness({ bridge: false });
    h.agent.behavior = (r) => (r.payload.text === '长文' ? { reply: LONG_REPLY } : {});
    const first = await h.spawnBridge();
    h.pointSimAt(first.url);
    const u = await h.newUser();
    const sim = h.sim.sim;
    // Once the welcome and two parts arrived, the next send hangs (WeChat never answers it).
    const onEvent = (e: { type: string; openid?: string }) => {
      if (e.type === 'inbox' && e.openid === u && sim.inbox(u).length === 3) {
        sim.faults.set('custom_send', { timeoutTimes: 1 });
      }
    };
    sim.events.on('event', onEvent);
    await h.client.sendText(u, '长文');
    await waitFor(() => sim.calls({ endpoint: 'custom_send' }).some((c) => c.fault === 'timeout'), {
      timeoutMs: 15_000,
      what: 'the hanging third part',
    });
    sim.events.off('event', onEvent);
    await first.svc.stop('SIGKILL');
    expect(sim.inbox(u)).toHaveLength(3);

    const second = await h.spawnBridge();
    h.pointSimAt(second.url);
    const texts = await h.waitTexts(u, 4, 20_000);
    await h.client.sendText(u, 'ping');
    await h.waitTexts(u, 5, 20_000);
    await h.idle();
    const all = await h.texts(u);
    expect(all).toHaveLength(5);
    expect(all.slice(1, 4).join('\n\n')).toBe(LONG_REPLY);
    expect(all[4]).toBe('收到：ping');
    expect(texts[3]?.startsWith('第三段')).toBe(true);
  });

  it('SIGTERM: stops taking pushes, hands in-flight work to another process and exits 0', async () => {
    h = await startHarness({ bridge: false, env: { BRIDGE_CLAIM_IDLE_MS: '600000' } });
    let calls = 0;
    h.agent.behavior = () => (calls++ === 0 ? { hold: true } : {});
    const first = await h.spawnBridge();
    h.pointSimAt(first.url);
    const u = await h.newUser();
    await h.client.sendText(u, '你好');
    await waitFor(() => h?.agent.requests.length === 1, { what: 'the dispatch to the agent' });
    const second = await h.spawnBridge();

    const code = await first.svc.stop('SIGTERM', 15_000);
    expect(code).toBe(0);
    expect(first.svc.output()).toContain('bridge stopped');
    await expect(fetch(`${first.url}/health`)).rejects.toThrow();

    // Claiming idle work is disabled (10 min): only the hand-back can bring the message to the second process.
    h.pointSimAt(second.url);
    expect((await h.waitTexts(u, 2, 20_000))[1]).toBe('收到：你好');
    await h.idle();
    expect(await h.texts(u)).toHaveLength(2);
  });
});
