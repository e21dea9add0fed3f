import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './read-body.js';

/**
 * A small orchestrator for the bridge's tests that follows DESIGN.md's Orchestrator API: VM
 * records in memory, bearer token required, VMs become `running` after `readyAfterMs`, their
 * `agent_url` points at the test agent and each gets its own `agent_token`.
 */
export interface TestVm {
  user_id: string;
  state: 'creating' | 'running' | 'stopped' | 'error';
  ip: string;
  ssh: { host: string; port: number };
  agent_url: string | null;
  agent_token: string;
  created_at: string;
  last_active_at: string;
  vcpu: number;
  mem_mib: number;
  callback_url: string | null;
  callback_token: string | null;
  readyAt: number;
  /** When it became `running` (null otherwise), as the real orchestrator reports it. */
  started_at?: string | null;
}

export interface OrchestratorRequest {
  method: string;
  path: string;
  body: unknown;
  authorized: boolean;
}

export interface TestOrchestrator {
  url: string;
  token: string;
  vms: Map<string, TestVm>;
  requests: OrchestratorRequest[];
  /** Behaviour of the next creations/starts. */
  behavior: {
    readyAfterMs: number;
    /** VMs end in `error` instead of `running`. */
    failVm: boolean;
    /** POST /api/v1/vms answers 500. */
    fail500: boolean;
    /** VMs run an image without an agent (like the tiny test image): `agent_url` is null. */
    noAgent: boolean;
  };
  agentUrl: string;
  /** Agent tokens of every VM ever created (the test agent accepts these). */
  agentTokens(): Set<string>;
  close(): Promise<void>;
}

function view(vm: TestVm) {
  const { readyAt: _r, callback_token: _t, ...rest } = vm;
  return rest;
}

export async function startTestOrchestrator(opts: {
  agentUrl: string;
  token?: string;
}): Promise<TestOrchestrator> {
  const token = opts.token ?? randomBytes(16).toString('hex');
  const orch: TestOrchestrator = {
    url: '',
    token,
    vms: new Map(),
    requests: [],
    behavior: { readyAfterMs: 0, failVm: false, fail500: false, noAgent: false },
    agentUrl: opts.agentUrl,
    agentTokens: () => new Set([...orch.vms.values()].map((v) => v.agent_token)),
    close: async () => {},
  };

  const refresh = (vm: TestVm) => {
    if (vm.state === 'creating' && Date.now() >= vm.readyAt) {
      vm.state = orch.behavior.failVm ? 'error' : 'running';
      vm.started_at = vm.state === 'running' ? new Date().toISOString() : null;
    }
  };

  const server: Server = createServer(async (req, res) => {
    const raw = await readBody(req);
    let body: unknown = null;
    try {
      body = raw ? JSON.parse(raw) : null;
    } catch {
      body = raw;
    }
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const authorized = req.headers.authorization === `Bearer ${token}`;
    orch.requests.push({ method: req.method ?? '', path, body, authorized });
    const send = (status: number, data: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(data));
    };
    if (req.method === 'GET' && path === '/health') {
      const running = [...orch.vms.values()].filter((v) => v.state === 'running').length;
      return send(200, { status: 'ok', driver: 'test', details: {}, vms: running });
    }
    if (!authorized) return send(401, { error: 'unauthorized' });
    const m = path.match(/^\/api\/v1\/vms(?:\/([^/]+))?(\/touch|\/stop)?$/);
    if (!m) return send(404, { error: 'not found' });
    const userId = m[1] ? decodeURIComponent(m[1]) : undefined;
    const now = new Date().toISOString();

    if (req.method === 'POST' && !userId) {
      if (orch.behavior.fail500) return send(500, { error: 'simulated failure' });
      const b = (body ?? {}) as { user_id?: string; callback_url?: string; callback_token?: string };
      if (!b.user_id) return send(400, { error: 'user_id is required' });
      let vm = orch.vms.get(b.user_id);
      if (!vm) {
        vm = {
          user_id: b.user_id,
          state: 'creating',
          ip: '127.0.0.1',
          ssh: { host: '127.0.0.1', port: 22 },
          agent_url: orch.behavior.noAgent ? null : orch.agentUrl,
          agent_token: randomBytes(16).toString('hex'),
          created_at: now,
          last_active_at: now,
          vcpu: 1,
          mem_mib: 512,
          callback_url: b.callback_url ?? null,
          callback_token: b.callback_token ?? null,
          readyAt: Date.now() + orch.behavior.readyAfterMs,
        };
        orch.vms.set(b.user_id, vm);
      } else if (vm.state === 'stopped' || vm.state === 'error') {
        vm.state = 'creating';
        vm.readyAt = Date.now() + orch.behavior.readyAfterMs;
        vm.callback_url = b.callback_url ?? vm.callback_url;
        vm.callback_token = b.callback_token ?? vm.callback_token;
      }
      refresh(vm);
      return send(vm.state === 'running' ? 200 : 202, view(vm));
    }
    if (req.method === 'GET' && !userId) {
      for (const vm of orch.vms.values()) refresh(vm);
      return send(200, { vms: [...orch.vms.values()].map(view) });
    }
    const vm = userId ? orch.vms.get(userId) : undefined;
    if (!vm) return send(404, { error: 'no such VM' });
    if (req.method === 'GET' && !m[2]) {
      refresh(vm);
      return send(200, view(vm));
    }
    if (req.method === 'POST' && m[2] === '/stop') {
      vm.state = 'stopped';
      vm.started_at = null;
      return send(200, view(vm));
    }
    if (req.method === 'POST' && m[2]) {
      vm.last_active_at = now;
      return send(200, view(vm));
    }
    if (req.method === 'DELETE' && !m[2]) {
      vm.state = 'stopped';
      return send(200, view(vm));
    }
    return send(405, { error: 'method not allowed' });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  orch.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  orch.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return orch;
}
