import { freePort } from '@moltage/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { backoffDelayMs, CallbackClient, DEFAULT_RETRY_POLICY, isRetryableStatus } from './callback.js';
import { CallbackError } from './errors.js';
import {
  type RecordingServer,
  recordingLogger,
  startRecordingServer,
} from './test-support/recording-server.js';

const fastPolicy = { initialDelayMs: 20, maxDelayMs: 100, timeoutMs: 2000, maxAttempts: 4 };

describe('CallbackClient against a real HTTP server', () => {
  let server: RecordingServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('retries a bridge that fails twice, then delivers once it answers', async () => {
    server = await startRecordingServer((n) => (n <= 2 ? 503 : 200));
    const log = recordingLogger();
    const client = new CallbackClient({ logger: log.logger, policy: fastPolicy });
    const report = await client.deliver(
      { url: `${server.url}/callback`, token: 'cb-token' },
      { openid: 'o1', text: '你好！', messageId: 'm1', success: true },
    );
    expect(report).toEqual({ attempts: 3, status: 200 });
    expect(server.requests).toHaveLength(3);
    for (const req of server.requests) {
      expect(req.method).toBe('POST');
      expect(req.url).toBe('/callback');
      expect(req.headers.authorization).toBe('Bearer cb-token');
      expect(req.json).toEqual({
        openid: 'o1',
        text: '你好！',
        message_id: 'm1',
        token: 'cb-token',
        success: true,
        result: '你好！',
      });
    }
    expect(log.lines.filter((l) => l.level === 'warn')).toHaveLength(2);
    expect(log.errors()).toEqual([]);
  });

  it('gives up after maxAttempts on network errors, logging an error with the message id', async () => {
    const port = await freePort(); // nothing listens there
    const log = recordingLogger();
    const client = new CallbackClient({ logger: log.logger, policy: { ...fastPolicy, maxAttempts: 3 } });
    const err = await client
      .deliver(
        { url: `http://127.0.0.1:${port}/callback` },
        { openid: 'o1', text: 'hi', messageId: 'm-42', success: true },
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallbackError);
    expect((err as CallbackError).code).toBe('OCP_CALLBACK_FAILED');
    expect((err as CallbackError).attempts).toBe(3);
    expect(log.errors()).toHaveLength(1);
    expect(log.errors()[0]).toContain('message m-42');
    expect(log.errors()[0]).toContain('gave up');
  });

  it('does not retry an answer that will not change (4xx)', async () => {
    server = await startRecordingServer(() => 403);
    const log = recordingLogger();
    const client = new CallbackClient({ logger: log.logger, policy: fastPolicy });
    const err = await client
      .deliver({ url: `${server.url}/callback`, token: 'wrong' }, { openid: 'o1', text: 'hi', success: true })
      .catch((e: unknown) => e);
    expect((err as CallbackError).code).toBe('OCP_CALLBACK_REJECTED');
    expect(server.requests).toHaveLength(1);
    expect(log.errors()[0]).toContain('HTTP 403');
  });

  it('reports a failure of the agent with success false and no result', async () => {
    server = await startRecordingServer();
    const client = new CallbackClient({ logger: recordingLogger().logger, policy: fastPolicy });
    await client.deliver(
      { url: `${server.url}/cb` },
      { openid: 'o1', messageId: 'm1', success: false, error: 'boom' },
    );
    expect(server.requests[0]?.json).toEqual({
      openid: 'o1',
      message_id: 'm1',
      success: false,
      error: 'boom',
    });
  });

  it('never logs the callback token or query string', async () => {
    const port = await freePort();
    const log = recordingLogger();
    const client = new CallbackClient({ logger: log.logger, policy: { ...fastPolicy, maxAttempts: 2 } });
    await client
      .deliver(
        { url: `http://127.0.0.1:${port}/cb?sig=secret-sig`, token: 'secret-token' },
        { openid: 'o1', text: 'x', success: true },
      )
      .catch(() => undefined);
    const all = log.lines.map((l) => l.message).join('\n');
    expect(all).not.toContain('secret-token');
    expect(all).not.toContain('secret-sig');
  });
});

describe('backoff', () => {
  it('doubles from the initial delay up to the cap', () => {
    const policy = { ...DEFAULT_RETRY_POLICY, initialDelayMs: 100, maxDelayMs: 1000 };
    const noJitter = () => 1;
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelayMs(a, policy, noJitter))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect(backoffDelayMs(1, policy, () => 0)).toBe(80);
  });

  it('retries only answers that may change', () => {
    expect([500, 502, 503, 504, 408, 429].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 410].some(isRetryableStatus)).toBe(false);
  });
});
