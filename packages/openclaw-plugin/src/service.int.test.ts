import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@moltage/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CallbackClient } from './callback.js';
import type { PluginError } from './errors.js';
import { CallbackRouteStore } from './routes-store.js';
import { type AgentDispatch, sendProactive, WebhookService } from './service.js';
import {
  type RecordingServer,
  recordingLogger,
  startRecordingServer,
} from './test-support/recording-server.js';

const TOKEN = 'webhook-token-0123456789';
const policy = { initialDelayMs: 10, maxDelayMs: 50, timeoutMs: 2000, maxAttempts: 3 };

/**
 * Stand-in for the agent at the dispatch seam (the real OpenClaw agent runs in
 * openclaw-gateway.int.test.ts): answers every message with two replies, or fails on "boom".
 */
const echoAgent: AgentDispatch = async (msg, reply) => {
  if (msg.text === 'boom') throw new Error('model provider unreachable');
  await reply(`first answer to ${msg.text}`);
  await reply(`second answer to ${msg.text}`);
};

describe('WebhookService: webhook → agent → callback', () => {
  let dir: string;
  let bridge: RecordingServer;
  let service: WebhookService | undefined;
  let port: number;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'moltage-service-'));
    bridge = await startRecordingServer();
    port = await freePort();
  });
  afterEach(async () => {
    await service?.stop();
    service = undefined;
    await bridge.close();
    await rm(dir, { recursive: true, force: true });
  });

  function build(
    rawConfig: Record<string, unknown>,
    dispatch: AgentDispatch = echoAgent,
    busyRetryDelaysMs?: number[],
  ) {
    const log = recordingLogger();
    const routes = new CallbackRouteStore(join(dir, 'routes.json'), log.logger);
    const callbacks = new CallbackClient({ logger: log.logger, policy });
    const failures: unknown[] = [];
    service = new WebhookService({
      rawConfig: { host: '127.0.0.1', port, authToken: TOKEN, ...rawConfig },
      env: {},
      logger: log.logger,
      channelDefaults: () => ({}),
      routes,
      callbacks,
      dispatch,
      reportFailure: (err) => failures.push(err),
      ...(busyRetryDelaysMs ? { busyRetryDelaysMs } : {}),
    });
    return { log, routes, callbacks, failures, service };
  }

  function post(body: unknown) {
    return fetch(`http://127.0.0.1:${port}/webhook`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  it('posts every reply to the callback URL with the openid, message id and token', async () => {
    const { service: svc } = build({});
    await svc.start();
    const res = await post({
      message_id: 'm1',
      openid: 'oUser1',
      text: 'hello',
      msg_type: 'text',
      callback_url: `${bridge.url}/callback`,
      callback_token: 'user-token',
    });
    expect(res.status).toBe(202);
    const [first, second] = await bridge.waitForRequests(2);
    expect(first?.json).toEqual({
      openid: 'oUser1',
      text: 'first answer to hello',
      message_id: 'm1',
      token: 'user-token',
      success: true,
      result: 'first answer to hello',
    });
    expect(second?.json).toMatchObject({ text: 'second answer to hello', message_id: 'm1' });
  });

  it('answers the community bridge with success/result', async () => {
    const { service: svc } = build({});
    await svc.start();
    await post({ task: 'hi', callback_url: `${bridge.url}/callback/oUser2`, metadata: { openid: 'oUser2' } });
    const [first] = await bridge.waitForRequests(1);
    expect(first?.url).toBe('/callback/oUser2');
    expect(first?.json).toMatchObject({ success: true, result: 'first answer to hi', openid: 'oUser2' });
  });

  it('tells the bridge when the agent fails instead of staying silent', async () => {
    const { service: svc, log } = build({});
    await svc.start();
    await post({
      message_id: 'm9',
      openid: 'oUser3',
      text: 'boom',
      msg_type: 'text',
      callback_url: `${bridge.url}/cb`,
    });
    const [first] = await bridge.waitForRequests(1);
    expect(first?.json).toEqual({
      openid: 'oUser3',
      message_id: 'm9',
      success: false,
      error: 'model provider unreachable',
    });
    expect(log.errors().some((e) => e.includes('m9'))).toBe(true);
  });

  it('tries a turn again while OpenClaw’s state database is busy, and answers once', async () => {
    let tries = 0;
    const busyTwice: AgentDispatch = async (msg, reply) => {
      tries++;
      if (tries <= 2) {
        const err = new Error('another OpenClaw process owns state-lifecycle');
        err.name = 'StateDatabaseCoordinatorContentionError';
        throw err;
      }
      await reply(`answer to ${msg.text}`);
    };
    const { service: svc, log } = build({}, busyTwice, [10, 10, 10]);
    await svc.start();
    await post({
      message_id: 'm5',
      openid: 'oUser5',
      text: 'hi',
      msg_type: 'text',
      callback_url: `${bridge.url}/cb`,
    });
    const [first] = await bridge.waitForRequests(1);
    expect(first?.json).toMatchObject({ success: true, text: 'answer to hi', message_id: 'm5' });
    expect(tries).toBe(3);
    expect(log.warnings().filter((w) => w.includes('trying again'))).toHaveLength(2);
  });

  it('gives up on a busy state database after its retries and tells the bridge', async () => {
    const alwaysBusy: AgentDispatch = async () => {
      throw new Error('another OpenClaw process owns state-lifecycle');
    };
    const { service: svc } = build({}, alwaysBusy, [10, 10]);
    await svc.start();
    await post({
      message_id: 'm6',
      openid: 'oUser6',
      text: 'hi',
      msg_type: 'text',
      callback_url: `${bridge.url}/cb`,
    });
    const [first] = await bridge.waitForRequests(1);
    expect(first?.json).toMatchObject({
      success: false,
      error: 'another OpenClaw process owns state-lifecycle',
    });
  });

  it('sends later messages of the agent through the route of the user’s last message', async () => {
    const { service: svc, routes, callbacks } = build({});
    await svc.start();
    await post({
      message_id: 'm1',
      openid: 'oUser4',
      text: 'remind me',
      msg_type: 'text',
      callback_url: `${bridge.url}/callback`,
      callback_token: 'tok-4',
    });
    await bridge.waitForRequests(2);
    await sendProactive({ routes, callbacks, channelDefaults: () => ({}) }, 'oUser4', 'time to stretch');
    const third = (await bridge.waitForRequests(3))[2];
    expect(third?.json).toEqual({
      openid: 'oUser4',
      text: 'time to stretch',
      token: 'tok-4',
      success: true,
      result: 'time to stretch',
    });

    const unknown = await sendProactive(
      { routes, callbacks, channelDefaults: () => ({}) },
      'nobody',
      'x',
    ).catch((e: unknown) => e);
    expect((unknown as PluginError).code).toBe('OCP_NO_CALLBACK_ROUTE');
  });

  it('keeps serving when useNgrok is set without an authtoken, and says what is missing', async () => {
    const { service: svc, log, failures } = build({ useNgrok: true });
    const started = await svc.start();
    expect(await started.publicUrl).toBeUndefined();
    expect((failures[0] as PluginError).code).toBe('OCP_TUNNEL_FAILED');
    expect(log.errors()[0]).toMatch(/ngrok tunnel not started: useNgrok is true but no authtoken is set/);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });

  it('hands the ngrok options to the real @ngrok/ngrok agent, which fails clearly when ngrok is unreachable', async () => {
    const closed = await freePort(); // stands in for ngrok's connect URL: loopback, nothing listens
    const {
      service: svc,
      log,
      failures,
    } = build({
      useNgrok: true,
      ngrokAuthToken: 'not-a-real-ngrok-token',
      ngrokServerAddr: `127.0.0.1:${closed}`,
    });
    const started = await svc.start();
    expect(await started.publicUrl).toBeUndefined();
    expect((failures[0] as PluginError).code).toBe('OCP_TUNNEL_FAILED');
    const message = log.errors()[0] ?? '';
    expect(message).toContain('ngrok tunnel not started');
    expect(message).toContain('failed to connect session');
    expect(log.lines.some((l) => l.message.includes(`via 127.0.0.1:${closed}`))).toBe(true);
    expect(message).not.toContain('not-a-real-ngrok-token');
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });

  it('refuses to start without a token, naming the setting', () => {
    expect(
      () =>
        new WebhookService({
          rawConfig: { port },
          logger: recordingLogger().logger,
          channelDefaults: () => ({}),
          routes: new CallbackRouteStore(join(dir, 'r.json'), recordingLogger().logger),
          callbacks: new CallbackClient({ logger: recordingLogger().logger }),
          dispatch: echoAgent,
        }),
    ).toThrow(/plugins\.entries\.webhook-server\.config\.authToken is required/);
  });

  it('says which port is taken when it cannot listen', async () => {
    const blocker = build({});
    await blocker.service.start();
    const second = new WebhookService({
      rawConfig: { host: '127.0.0.1', port, authToken: TOKEN },
      logger: recordingLogger().logger,
      channelDefaults: () => ({}),
      routes: new CallbackRouteStore(join(dir, 'r2.json'), recordingLogger().logger),
      callbacks: new CallbackClient({ logger: recordingLogger().logger }),
      dispatch: echoAgent,
    });
    await expect(second.start()).rejects.toThrow(`could not listen on 127.0.0.1:${port}`);
  });
});
