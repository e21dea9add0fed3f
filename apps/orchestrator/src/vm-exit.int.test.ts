import { readdir } from 'node:fs/promises';
import { type RedisServer, startRedis, waitFor } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningOrchestrator, runOrchestrator } from './orchestrator.js';
import {
  callApi,
  type Sandbox,
  sandbox,
  tinyImage,
  tinyOrchestratorEnv,
  vmProcesses,
} from './test/helpers.js';

const TOKEN = 'vm-exit-token-0123456789abcdef';

describe('a VM whose process ends on its own (real tiny VM under QEMU)', () => {
  let redis: RedisServer | undefined;
  let box: Sandbox | undefined;
  let orch: RunningOrchestrator | undefined;
  let r: Redis | undefined;

  beforeAll(async () => {
    await tinyImage();
  }, 600_000);

  afterEach(async () => {
    r?.disconnect();
    await orch?.close().catch(() => {});
    await box?.cleanup();
    await redis?.stop();
    r = undefined;
    orch = undefined;
    box = undefined;
    redis = undefined;
  }, 120_000);

  const api = (method: string, path: string, body?: unknown) => callApi(orch!.url, TOKEN, method, path, body);

  it('killed under the orchestrator: the record becomes stopped, its IP, slot and run dir are freed, the next create starts it again', async () => {
    redis = await startRedis();
    box = await sandbox();
    orch = await runOrchestrator({
      env: tinyOrchestratorEnv(box, redis.url, TOKEN, {
        HOST_ID: 'exit-host',
        LOG_LEVEL: 'error',
        VM_DATA_DISK_MIB: '256',
        VM_READY_TIMEOUT_MS: '60000',
      }),
    });
    r = new Redis(redis.url);
    const created = await api('POST', '/api/v1/vms', { user_id: 'vic' });
    expect(created.body.state).toBe('running');
    const pid = JSON.parse((await r.get('vm:vic')) as string).runtime.handle.pid as number;
    expect((await vmProcesses(box.socketDir)).map((p) => p.pid)).toEqual([pid]);

    // As the OOM killer would: no QMP, no power-off, no chance to clean up.
    process.kill(pid, 'SIGKILL');
    const stopped = await waitFor(
      async () => {
        const rec = await api('GET', '/api/v1/vms/vic');
        return rec.body.state === 'stopped' ? rec.body : null;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the record to show the VM stopped' },
    );
    expect(stopped).toMatchObject({ ip: null, ssh: null, agent_url: null, started_at: null });
    expect(await r.hgetall('ippool:10.0.1.0/24')).toEqual({});
    expect(await r.smembers('vms:active:exit-host')).toEqual([]);
    expect(await r.keys('lock:*')).toEqual([]);
    expect(await readdir(box.socketDir)).toEqual([]);
    expect(await vmProcesses(box.socketDir)).toEqual([]);

    const again = await api('POST', '/api/v1/vms', { user_id: 'vic' });
    expect(again.body).toMatchObject({ state: 'running', agent_token: created.body.agent_token });
    expect(await vmProcesses(box.socketDir)).toHaveLength(1);
  }, 180_000);
});
