import { PassThrough } from 'node:stream';
import { ConfigError, createLogger } from '@moltage/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningSimulator, runSimulator } from './main.js';

let running: RunningSimulator | null = null;
afterEach(async () => {
  await running?.close();
  running = null;
});

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => {
    text += d.toString();
  });
  return { stream, text: () => text };
}

describe('runSimulator', () => {
  it('listens, prints the banner with the credentials, and keeps secrets out of the JSON logs', async () => {
    const out = capture();
    const logs = capture();
    const logger = createLogger({ name: 'simulator', level: 'info', destination: logs.stream });
    running = await runSimulator(
      ['--port', '0', '--mode', 'compatible'],
      { SIM_APPID: 'wxbanner01' },
      {
        stdout: out.stream,
        handleSignals: false,
        logger,
      },
    );
    expect(running).not.toBeNull();
    const { url, account } = running!;
    expect(account.mode).toBe('compatible');
    expect(account.appId).toBe('wxbanner01');
    const banner = out.text();
    expect(banner).toContain(`listening on ${url}`);
    expect(banner).toContain(`WECHAT_APPSECRET=${account.appSecret}`);
    expect(banner).toContain(`WECHAT_TOKEN=${account.token}`);
    expect(banner).toContain(`WECHAT_ENCODING_AES_KEY=${account.encodingAesKey}`);

    const tokenRes = await fetch(
      `${url}/cgi-bin/token?grant_type=client_credential&appid=${account.appId}&secret=${account.appSecret}`,
    );
    const { access_token } = (await tokenRes.json()) as { access_token: string };
    await fetch(`${url}/cgi-bin/message/custom/typing?access_token=${access_token}`, {
      method: 'POST',
      body: '{}',
    });
    expect((await fetch(`${url}/`)).status).toBe(200);
    await running!.close();
    running = null;

    const logText = logs.text();
    expect(logText).toContain('simulator started');
    expect(logText).toContain('/cgi-bin/token');
    expect(logText).not.toContain(account.appSecret);
    expect(logText).not.toContain(account.token);
    expect(logText).not.toContain(account.encodingAesKey!);
    expect(logText).not.toContain(access_token);
  });

  it('prints usage for --help and starts nothing', async () => {
    const out = capture();
    expect(await runSimulator(['--help'], {}, { stdout: out.stream, handleSignals: false })).toBeNull();
    expect(out.text()).toContain('Usage: moltage sim');
  });

  it('refuses bad configuration naming every problem', async () => {
    const err = await runSimulator(
      ['--port', 'abc'],
      { SIM_MODE: 'secret', SIM_AES_KEY: 'short' },
      {
        handleSignals: false,
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toContain('Invalid option --port');
    expect(problems).toContain('Invalid environment variable SIM_MODE');
    expect(problems).toContain('Invalid environment variable SIM_AES_KEY');
    const unknown = await runSimulator(['--nope'], {}, { handleSignals: false }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(ConfigError);
  });
});
