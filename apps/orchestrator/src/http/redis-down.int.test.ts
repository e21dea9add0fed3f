import { type RedisServer, startRedis } from '@moltage/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningOrchestrator, runOrchestrator } from '../orchestrator.js';
import { type Sandbox, sandbox, tinyImage, tinyOrchestratorEnv, vmProcesses } from '../test/helpers.js';

// With its Redis gone the orchestrator cannot know or record any VM: every API call answers 503
// with a reason and Retry-After (callers retry), never a 500, and no VM is started.

const TOKEN = 'redis-down-test-token-0123456789';

let redis: RedisServer | undefined;
let box: Sandbox | undefined;
let orch: RunningOrchestrator | undefined;

beforeAll(async () => {
  await tinyImage();
  redis = await startRedis();
  box = await sandbox();
  orch = await runOrchestrator({ env: tinyOrchestratorEnv(box, redis.url, TOKEN, { LOG_LEVEL: 'silent' }) });
}, 600_000);

afterAll(async () => {
  await orch?.close().catch(() => {});
  await box?.cleanup();
  await redis?.stop();
}, 120_000);

describe('orchestrator API with Redis down', () => {
  it('answers 503 ORCH_STORE_UNAVAILABLE with Retry-After and starts no VM', async () => {
    const o = orch as RunningOrchestrator;
    await redis?.stop();
    redis = undefined;
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`${o.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    for (const [method, path, body] of [
      ['POST', '/api/v1/vms', { user_id: 'o_redis_down_user' }],
      ['GET', '/api/v1/vms/o_redis_down_user'],
      ['GET', '/api/v1/vms'],
    ] as const) {
      const res = await call(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(((await res.json()) as { code: string }).code).toBe('ORCH_STORE_UNAVAILABLE');
    }
    expect(await vmProcesses((box as Sandbox).socketDir)).toEqual([]);
  }, 120_000);
});
