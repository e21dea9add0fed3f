import { type RedisServer, startRedis } from '@moltage/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningOrchestrator, runOrchestrator } from '../orchestrator.js';
import { type Sandbox, sandbox, tinyImage, tinyOrchestratorEnv } from '../test/helpers.js';

// Every route of the orchestrator's API refuses a request without its bearer token with 401,
// whatever else the request carries. Routes are enumerated from the running server, so a route
// added later is covered too; only /health and /metrics are public.

const TOKEN = 'auth-test-token-0123456789abcdef';
const PUBLIC = new Set(['/health', '/metrics']);

let redis: RedisServer | undefined;
let box: Sandbox | undefined;
let orch: RunningOrchestrator | undefined;

beforeAll(async () => {
  await tinyImage();
  redis = await startRedis();
  box = await sandbox();
  orch = await runOrchestrator({ env: tinyOrchestratorEnv(box, redis.url, TOKEN) });
}, 600_000);

afterAll(async () => {
  await orch?.close().catch(() => {});
  await box?.cleanup();
  await redis?.stop();
}, 120_000);

/**
 * [method, path] of every route the server has, from Fastify's route tree: each line is a path
 * segment under the line one level up (four characters of indentation per level).
 */
function routes(o: RunningOrchestrator): [string, string][] {
  const out: [string, string][] = [];
  const stack: string[] = [];
  for (const line of o.app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?/.exec(line);
    if (!m) continue;
    const depth = (m[1] as string).length / 4;
    const path = `${depth > 0 ? (stack[depth - 1] ?? '') : ''}${m[2] as string}`;
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of (m[3] ?? '').split(',').map((x) => x.trim())) {
      if (method === '' || method === 'HEAD' || method === 'OPTIONS') continue;
      out.push([method, path]);
    }
  }
  return out;
}

describe('orchestrator API authentication', () => {
  it('answers 401 on every non-public route without the right bearer token, and creates nothing', async () => {
    const o = orch as RunningOrchestrator;
    const all = routes(o);
    const api = all.filter(([, p]) => !PUBLIC.has(p));
    // The routes DESIGN.md names are all there (a parsing failure must not make this test vacuous).
    for (const want of [
      'POST /api/v1/vms',
      'GET /api/v1/vms',
      'GET /api/v1/vms/:user_id',
      'DELETE /api/v1/vms/:user_id',
      'POST /api/v1/vms/:user_id/touch',
    ]) {
      expect(api.map(([m, p]) => `${m} ${p}`)).toContain(want);
    }
    const badAuth: (Record<string, string> | null)[] = [
      null,
      { authorization: '' },
      { authorization: 'Bearer' },
      { authorization: 'Bearer ' },
      { authorization: `bearer ${TOKEN}x` },
      { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Bearer ${TOKEN.toUpperCase()}` },
      { authorization: `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}` },
      { authorization: `Token ${TOKEN}` },
      { 'x-orchestrator-token': TOKEN },
      { cookie: `token=${TOKEN}` },
    ];
    const failures: string[] = [];
    for (const [method, path] of api) {
      const concrete = path.replace(/:[A-Za-z_]+/g, 'victim-user');
      for (const headers of badAuth) {
        for (const q of ['', `?token=${TOKEN}`, `?access_token=${TOKEN}`]) {
          const body = method === 'POST' || method === 'PUT' || method === 'PATCH';
          const res = await fetch(`${o.url}${concrete}${q}`, {
            method,
            headers: { ...(headers ?? {}), ...(body ? { 'content-type': 'application/json' } : {}) },
            ...(body ? { body: JSON.stringify({ user_id: 'victim-user', token: TOKEN }) } : {}),
          });
          const text = await res.text();
          if (res.status !== 401)
            failures.push(`${method} ${concrete}${q} ${JSON.stringify(headers)} → ${res.status}`);
          else if (!text.includes('ORCH_UNAUTHORIZED'))
            failures.push(`${method} ${concrete}: 401 without its code`);
        }
      }
    }
    expect(failures).toEqual([]);
    // Nothing was created, touched or deleted.
    expect(await o.manager.list()).toEqual([]);
    // The right token works (so the 401s above are about the token).
    const ok = await fetch(`${o.url}/api/v1/vms`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
  }, 120_000);

  it('the public routes reveal no token', async () => {
    const o = orch as RunningOrchestrator;
    for (const path of PUBLIC) {
      const res = await fetch(`${o.url}${path}`);
      expect(res.status).toBe(200);
      expect(await res.text()).not.toContain(TOKEN);
    }
  });
});
