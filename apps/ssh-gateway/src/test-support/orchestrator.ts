import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { TestSshd } from './sshd.js';

/**
 * An orchestrator for the gateway tests that follows the API contract (DESIGN.md "Orchestrator
 * API"): bearer token, `POST /api/v1/vms` starts a stopped "VM" (an sshd) and returns its record,
 * `GET /api/v1/vms/:user_id`, `POST /api/v1/vms/:user_id/touch`. Records live at `vm:<user>`
 * in Redis as the real orchestrator keeps them.
 */
export interface TestOrchestrator {
  url: string;
  token: string;
  requests: { method: string; path: string; authorized: boolean }[];
  touches: Map<string, number>;
  /** Writes a running record for an sshd that is up. */
  markRunning(userId: string): Promise<void>;
  /** Stops the sshd and writes a stopped record. */
  markStopped(userId: string): Promise<void>;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startTestOrchestrator(opts: {
  redis: Redis;
  token: string;
  vms: Map<string, TestSshd>;
  createdAt?: string;
}): Promise<TestOrchestrator> {
  const createdAt = opts.createdAt ?? '2026-01-01T00:00:00.000Z';
  const requests: TestOrchestrator['requests'] = [];
  const touches = new Map<string, number>();

  const record = (userId: string, sshd: TestSshd, state: 'running' | 'stopped') => ({
    user_id: userId,
    state,
    ip: '127.0.0.1',
    ssh: state === 'running' ? { host: '127.0.0.1', port: sshd.port } : null,
    agent_url: null,
    agent_token: 'test-agent-token',
    created_at: createdAt,
    last_active_at: new Date().toISOString(),
    vcpu: 1,
    mem_mib: 64,
    runtime: { vmId: `vm-${userId}`, handle: null, network: 'user' },
  });
  const put = async (userId: string, state: 'running' | 'stopped') => {
    const sshd = opts.vms.get(userId);
    if (!sshd) throw new Error(`no test VM for ${userId}`);
    await opts.redis.set(`vm:${userId}`, JSON.stringify(record(userId, sshd, state)));
  };
  const publicRecord = (raw: string) => {
    const { runtime: _runtime, ...rec } = JSON.parse(raw) as Record<string, unknown>;
    return rec;
  };

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const authorized = req.headers.authorization === `Bearer ${opts.token}`;
    requests.push({ method: req.method ?? '', path, authorized });
    const json = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    if (!authorized)
      return json(401, { code: 'ORCH_UNAUTHORIZED', message: 'missing or wrong bearer token' });
    void (async () => {
      if (req.method === 'POST' && path === '/api/v1/vms') {
        let userId: unknown;
        try {
          userId = (JSON.parse(await body(req)) as { user_id?: unknown }).user_id;
        } catch {
          return json(400, { code: 'ORCH_BAD_REQUEST', message: 'invalid JSON' });
        }
        const sshd = typeof userId === 'string' ? opts.vms.get(userId) : undefined;
        if (typeof userId !== 'string' || !sshd)
          return json(503, { code: 'ORCH_NO_DRIVER', message: 'no VM here' });
        await sshd.start();
        await put(userId, 'running');
        return json(200, publicRecord((await opts.redis.get(`vm:${userId}`))!));
      }
      const m = /^\/api\/v1\/vms\/([^/]+)(\/touch)?$/.exec(path);
      if (m) {
        const userId = decodeURIComponent(m[1]!);
        const raw = await opts.redis.get(`vm:${userId}`);
        if (!raw) return json(404, { code: 'ORCH_VM_NOT_FOUND', message: `no VM for user ${userId}` });
        if (req.method === 'GET' && !m[2]) return json(200, publicRecord(raw));
        if (req.method === 'POST' && m[2]) {
          touches.set(userId, (touches.get(userId) ?? 0) + 1);
          const rec = JSON.parse(raw) as Record<string, unknown>;
          rec.last_active_at = new Date().toISOString();
          await opts.redis.set(`vm:${userId}`, JSON.stringify(rec));
          return json(200, publicRecord(JSON.stringify(rec)));
        }
      }
      json(404, { code: 'ORCH_NOT_FOUND', message: `no route ${req.method} ${path}` });
    })().catch((err: Error) => json(500, { code: 'ORCH_INTERNAL', message: err.message }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    token: opts.token,
    requests,
    touches,
    markRunning: (userId) => put(userId, 'running'),
    async markStopped(userId) {
      await opts.vms.get(userId)?.stop();
      await put(userId, 'stopped');
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
