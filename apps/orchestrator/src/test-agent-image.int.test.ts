import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RedisServer, startRedis, waitFor } from '@moltage/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningOrchestrator, runOrchestrator } from './orchestrator.js';
import {
  callApi,
  type Sandbox,
  sandbox,
  tinyAgentImage,
  tinyImage,
  tinyOrchestratorEnv,
  vmProcesses,
} from './test/helpers.js';

// The `tiny-agent` image: the tiny image plus a test agent written in busybox shell
// (images/tiny/test-agent), so whole-stack tests can carry messages through real VMs without
// OpenClaw (minutes to start under TCG). It must honour the same webhook contract as the plugin.

const TOKEN = 'test-agent-token-0123456789abcdef';
const CALLBACK_TOKEN = 'cb-token-for-the-test-user-0123';

interface Callback {
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  status: number;
}

/** The bridge's /callback as the guest sees it: records every POST; `failFirst` ids get one 503. */
async function startCallbackServer(failFirst: Set<string>) {
  const calls: Callback[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      const id = String(body.message_id);
      const status = failFirst.delete(id) ? 503 : 200;
      calls.push({ path: req.url ?? '', headers: req.headers, body, status });
      res.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`,
    calls,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('tiny-agent image (busybox test agent, real QEMU VM)', () => {
  let redis: RedisServer | undefined;
  let box: Sandbox | undefined;
  let orch: RunningOrchestrator | undefined;
  let callbacks: Awaited<ReturnType<typeof startCallbackServer>> | undefined;

  beforeAll(async () => {
    await tinyAgentImage();
  }, 600_000);

  afterEach(async () => {
    await orch?.close().catch(() => {});
    await box?.cleanup();
    await redis?.stop();
    await callbacks?.close();
    orch = undefined;
    box = undefined;
    redis = undefined;
    callbacks = undefined;
  }, 120_000);

  it('is the tiny image plus an agent on port 8789, cached on its own', async () => {
    const [agentImage, tiny] = [await tinyAgentImage(), await tinyImage()];
    expect(agentImage.cached).toBe(true);
    expect(agentImage.manifest).toMatchObject({ name: 'tiny-agent', agentPort: 8789, sshUser: 'user' });
    expect(tiny.manifest).toMatchObject({ name: 'tiny', agentPort: null });
    expect(agentImage.manifest.hash).not.toBe(tiny.manifest.hash);
    expect(agentImage.manifest.packages).toEqual(tiny.manifest.packages);
  });

  it('serves the webhook contract: health, 401/400/404, 202 once per message, the reply through the callback with retries', async () => {
    redis = await startRedis();
    box = await sandbox();
    callbacks = await startCallbackServer(new Set(['m:retry']));
    orch = await runOrchestrator({
      env: tinyOrchestratorEnv(box, redis.url, TOKEN, {
        VM_IMAGE: 'tiny-agent',
        VM_DATA_DISK_MIB: '256',
        VM_READY_TIMEOUT_MS: '90000',
      }),
    });
    const { body: vm } = (await callApi(orch.url, TOKEN, 'POST', '/api/v1/vms', {
      user_id: 'ota',
      callback_url: callbacks.url,
      callback_token: CALLBACK_TOKEN,
    })) as { body: { state: string; agent_url: string; agent_token: string } };
    // Running means sshd and the agent answered (readiness covers the agent port for this image).
    expect(vm.state).toBe('running');
    expect(vm.agent_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/webhook$/);
    const agentUrl = vm.agent_url;
    const base = agentUrl.replace(/\/webhook$/, '');

    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    expect((await fetch(`${base}/nope`)).status).toBe(404);

    const post = (body: unknown, token: string | null = vm.agent_token) =>
      fetch(agentUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        },
        body: JSON.stringify(body),
      });
    const message = (id: string, text: string) => ({
      message_id: id,
      openid: 'ota',
      text,
      msg_type: 'text',
      // What the bridge sends: a loopback URL the guest cannot reach; the configured one wins.
      callback_url: 'http://127.0.0.1:1/callback?openid=ota&token=x',
      callback_token: CALLBACK_TOKEN,
      task: text,
      metadata: { openid: 'ota', msg_type: 'text', message_id: id },
    });

    expect((await post(message('m:1', 'hi'), null)).status).toBe(401);
    expect((await post(message('m:1', 'hi'), 'not-the-token')).status).toBe(401);
    const bad = await post({ message_id: 'm:0', text: 'no openid' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'bad_request', reason: 'openid' });
    expect(callbacks.calls).toEqual([]);

    const text = '你好 "quoted" \\ back\nline two';
    const first = await post(message('m:1', text));
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ status: 'accepted', message_id: 'm:1' });
    // The same message again (a bridge dispatches at least once): accepted, not run twice.
    const again = await post(message('m:1', text));
    expect(await again.json()).toEqual({ status: 'duplicate', message_id: 'm:1' });

    // The bridge answers 503 once (e.g. Redis restarting): the agent retries, like the plugin.
    expect((await post(message('m:retry', 'second'))).status).toBe(202);
    await waitFor(() => callbacks!.calls.filter((c) => c.status === 200).length === 2, {
      timeoutMs: 30_000,
      what: 'both replies',
    });
    const ok = callbacks.calls.filter((c) => c.status === 200);
    expect(ok.map((c) => c.body.message_id).sort()).toEqual(['m:1', 'm:retry']);
    const reply = ok.find((c) => c.body.message_id === 'm:1')!;
    expect(reply.path).toBe('/callback');
    expect(reply.headers.authorization).toBe(`Bearer ${CALLBACK_TOKEN}`);
    expect(reply.body).toEqual({
      openid: 'ota',
      message_id: 'm:1',
      text: `收到：${text}`,
      token: CALLBACK_TOKEN,
      success: true,
    });
    const retried = callbacks.calls.filter((c) => c.body.message_id === 'm:retry');
    expect(retried.map((c) => c.status)).toEqual([503, 200]);
    expect(retried[1]!.body).toEqual(retried[0]!.body);
    // Nothing else arrives later (no second reply to the duplicate).
    await new Promise((r) => setTimeout(r, 1500));
    expect(callbacks.calls).toHaveLength(3);

    await callApi(orch.url, TOKEN, 'DELETE', '/api/v1/vms/ota');
    expect(await vmProcesses(box.socketDir)).toEqual([]);
  }, 180_000);
});
