import { afterEach, describe, expect, it } from 'vitest';
import { launchBrowser, type TestBrowser } from '../test-support/browser.js';
import { type Harness, startHarness } from '../test-support/harness.js';

let h: Harness | undefined;
let b: TestBrowser | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
  await h?.close();
  h = undefined;
});

/** The simulator's chat page, end to end: page → simulator → bridge → test agent → back. */
describe('simulator chat page in Chromium', () => {
  it('creates a user, follows, sends a text and shows the reply', async () => {
    h = await startHarness();
    b = await launchBrowser({ viewport: { width: 420, height: 860 } });
    const { page } = b;
    await page.goto(`${h.sim.url}/`);
    await page.locator('#connPill.ok').waitFor();

    await page.fill('#newNickname', '小明');
    await page.click('#newUserBtn');
    await page.locator('#followBtn', { hasText: '关注 Follow' }).waitFor();
    await page.click('#followBtn');
    const chat = page.locator('#chat');
    await chat.getByText('欢迎关注！').waitFor();
    await page.locator('#followBtn', { hasText: '取消关注 Unfollow' }).waitFor();

    await page.fill('#text', '浏览器里的你好');
    await page.press('#text', 'Enter');
    await chat.locator('.row-msg.me .bubble', { hasText: '浏览器里的你好' }).waitFor();
    await chat.locator('.row-msg:not(.me) .bubble', { hasText: '收到：浏览器里的你好' }).waitFor();
    await chat
      .getByText(/已送达 delivered/)
      .first()
      .waitFor();

    const [user] = await h.client.users();
    expect(user?.nickname).toBe('小明');
    expect((await h.texts(user?.openid as string)).at(-1)).toBe('收到：浏览器里的你好');
    await b.screenshot('simulator-chat');
  });
});
