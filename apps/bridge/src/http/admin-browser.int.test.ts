import { afterEach, describe, expect, it } from 'vitest';
import { launchBrowser, type TestBrowser } from '../test-support/browser.js';
import { type Harness, startHarness, waitFor } from '../test-support/harness.js';

const ADMIN_TOKEN = 'browser-test-admin-token-0123';

let h: Harness | undefined;
let b: TestBrowser | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
  await h?.close();
  h = undefined;
});

describe('console in Chromium', () => {
  it('logs in, shows a message and its reply as they happen, stops and starts the VM', async () => {
    // The page refreshes every 3 s in production; faster here.
    h = await startHarness({ env: { ADMIN_TOKEN }, tuning: { consolePollMs: 300 } });
    b = await launchBrowser();
    const { page } = b;

    await page.goto(`${h.bridgeUrl}/admin`);
    await page.fill('#token', 'not-the-admin-token-at-all');
    await page.click('button[type=submit]');
    await page.getByRole('alert').getByText('Wrong token').waitFor();
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.locator('#messages').waitFor();
    expect(new URL(page.url()).pathname).toBe('/admin');

    // A simulated WeChat user writes; the page shows the message and the agent's reply without a reload.
    const { user } = await h.client.createUser({ nickname: '浏览器', follow: true });
    await h.client.sendText(user.openid, '来自浏览器测试的消息', { wait: false });
    const messages = page.locator('#messages');
    await messages.getByText('来自浏览器测试的消息', { exact: true }).waitFor();
    await messages.getByText('收到：来自浏览器测试的消息').waitFor();
    await messages.locator('tr', { hasText: '来自浏览器测试的消息' }).getByText('已回复 replied').waitFor();
    await b.screenshot('console-messages');

    // Stop the user's VM from the page, then start it again.
    const row = (state: string) => page.locator(`#vms tr[data-vm="${user.openid}"][data-state="${state}"]`);
    await row('running').getByRole('button', { name: '停止 Stop' }).click();
    await row('stopped').waitFor();
    expect(h.orch.vms.get(user.openid)?.state).toBe('stopped');
    await page.locator('#toast').getByText(`已停止 Stopped ${user.openid}`).waitFor();
    await row('stopped').getByRole('button', { name: '启动 Start' }).click();
    await row('running').waitFor();
    expect(h.orch.vms.get(user.openid)?.state).toBe('running');
    const calls = h.orch.requests.filter((r) => r.method === 'POST').map((r) => r.path);
    expect(calls).toContain(`/api/v1/vms/${user.openid}/stop`);
    await b.screenshot('console-vms');

    // The same page on a phone.
    const phone = await b.context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${h.bridgeUrl}/admin#messages`);
    await phone.locator('#messages').getByText('收到：来自浏览器测试的消息').waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await b.screenshot('console-phone', phone);

    // When the session ends (logout elsewhere, expiry, a new ADMIN_TOKEN) the page goes back to the login form.
    await h.r.del(...(await h.r.keys('admin:session:*')));
    await waitFor(() => new URL(phone.url()).pathname === '/admin/login', {
      timeoutMs: 10_000,
      what: 'the login form',
    });
    await phone.locator('#token').waitFor();
  });
});
