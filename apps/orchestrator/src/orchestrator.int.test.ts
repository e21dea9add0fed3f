import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type RedisServer, startRedis, waitFor } from '@moltage/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeConfigDisk } from './domain/config-disk.js';
import { type RunningOrchestrator, runOrchestrator } from './orchestrator.js';
import {
  callApi,
  type Sandbox,
  sandbox,
  sshBanner,
  sshRun,
  tinyImage,
  tinyOrchestratorEnv,
  vmProcesses,
} from './test/helpers.js';

const TOKEN = 'test-token-0123456789abcdef';

describe('orchestrator with real tiny VMs (QEMU, user networking)', () => {
  let redis: RedisServer | undefined;
  let box: Sandbox | undefined;
  let orch: RunningOrchestrator | undefined;

  beforeAll(async () => {
    await tinyImage();
  }, 600_000);

  afterEach(async () => {
    await orch?.close().catch(() => {});
    await box?.cleanup();
    await redis?.stop();
    orch = undefined;
    box = undefined;
    redis = undefined;
  }, 120_000);

  async function start(extra: Record<string, string> = {}) {
    redis = await startRedis();
    box = await sandbox();
    orch = await runOrchestrator({
      env: tinyOrchestratorEnv(box, redis.url, TOKEN, {
        VM_DATA_DISK_MIB: '256',
        VM_READY_TIMEOUT_MS: '60000',
        ...extra,
      }),
    });
    return orch;
  }

  const api = (method: string, path: string, body?: unknown, token: string | null = TOKEN) =>
    callApi(orch!.url, token, method, path, body);

  it('refuses requests without the bearer token and explains bad input', async () => {
    await start();
    expect((await api('GET', '/api/v1/vms', undefined, null)).status).toBe(401);
    const wrong = await api('POST', '/api/v1/vms', { user_id: 'a' }, 'wrong-token-0123456789abcd');
    expect(wrong).toMatchObject({ status: 401, body: { code: 'ORCH_UNAUTHORIZED' } });
    const bad = await api('POST', '/api/v1/vms', { user_id: '../etc' });
    expect(bad).toMatchObject({ status: 400, body: { code: 'ORCH_BAD_REQUEST' } });
    expect((await api('POST', '/api/v1/vms', { nope: 1 })).status).toBe(400);
    expect((await api('GET', '/api/v1/vms/nobody')).body.code).toBe('ORCH_VM_NOT_FOUND');
    const health = await api('GET', '/health', undefined, null);
    expect(health.body).toMatchObject({ status: 'ok', driver: 'qemu', vms: 0 });
    expect(await vmProcesses(box!.socketDir)).toHaveLength(0);
  });

  it('creates a VM reachable over SSH, keeps /home across stop/start, deletes it', async () => {
    await start({
      LLM_BASE_URL: 'http://127.0.0.1:4000/v1',
      LLM_API_KEY: 'sk-test',
      LLM_MODEL: 'fake-model',
    });
    const created = await api('POST', '/api/v1/vms', {
      user_id: 'alice',
      callback_url: 'http://127.0.0.1:3000/callback',
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      user_id: 'alice',
      state: 'running',
      ip: '10.0.1.2',
      vcpu: 1,
      mem_mib: 128,
    });
    expect(created.body.agent_token).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(created.body).not.toHaveProperty('runtime');
    // For the console: when it booted (uptime) and, on GET, the QEMU process's resident memory.
    expect(Date.parse(created.body.started_at)).toBeLessThanOrEqual(Date.now());
    expect((await api('GET', '/api/v1/vms/alice')).body.rss_mib).toBeGreaterThan(16);
    expect((await api('GET', '/api/v1/vms')).body.vms[0].rss_mib).toBeGreaterThan(16);
    const port = created.body.ssh.port as number;
    expect(await sshBanner(port)).toBe(true);

    // The per-VM config reached the guest (hostname, address, loopback URL rewritten).
    expect(
      (await sshRun(port, box!.keyPath, 'id -un; hostname; ip -4 -o addr show dev eth0')).split('\n'),
    ).toEqual([
      'user',
      expect.stringMatching(/^moltage-[0-9a-f]{10}$/),
      expect.stringContaining('inet 10.0.1.2/24'),
      '',
    ]);
    await sshRun(port, box!.keyPath, 'echo "kept across restarts" > ~/note.txt && sync');

    // What the guest was given at boot: the gateway key, its token, host URLs as the guest sees them.
    const config = decodeConfigDisk(await readFile(join(box!.dataDir, 'alice', 'config.img')));
    expect(config).toMatchObject({
      ip: '10.0.1.2/24',
      gateway: '10.0.1.1',
      ssh_user: 'user',
      ssh_authorized_key: (await readFile(box!.pubKeyPath, 'utf8')).trim(),
      agent_token: created.body.agent_token,
      callback_url: 'http://10.0.1.1:3000/callback',
      llm_base_url: 'http://10.0.1.1:4000/v1',
      llm_api_key: 'sk-test',
      llm_model: 'fake-model',
    });

    // Idle stop, then the next create starts it again with the same data disk.
    expect(await orch!.manager.reapIdle(0)).toEqual(['alice']);
    expect((await api('GET', '/api/v1/vms/alice')).body).toMatchObject({
      state: 'stopped',
      ip: null,
      started_at: null,
      rss_mib: null,
    });
    expect(await vmProcesses(box!.socketDir)).toHaveLength(0);
    const again = await api('POST', '/api/v1/vms', { user_id: 'alice' });
    expect(again.body).toMatchObject({ state: 'running', agent_token: created.body.agent_token });
    expect(await sshRun(again.body.ssh.port, box!.keyPath, 'cat ~/note.txt')).toBe('kept across restarts\n');

    // DELETE keeps the disk; a new VM for the same user sees the file.
    expect((await api('DELETE', '/api/v1/vms/alice')).status).toBe(204);
    expect((await api('GET', '/api/v1/vms/alice')).status).toBe(404);
    expect(await vmProcesses(box!.socketDir)).toHaveLength(0);
    await access(join(box!.dataDir, 'alice', 'data.img'));
    const third = await api('POST', '/api/v1/vms', { user_id: 'alice' });
    expect(await sshRun(third.body.ssh.port, box!.keyPath, 'cat ~/note.txt')).toBe('kept across restarts\n');

    // purge removes the data disk as well.
    expect((await api('DELETE', '/api/v1/vms/alice?purge=true')).status).toBe(204);
    await expect(access(join(box!.dataDir, 'alice'))).rejects.toThrow();
    expect((await api('GET', '/api/v1/vms')).body.vms).toEqual([]);
  }, 240_000);

  it('answers two simultaneous creates for one user with one VM', async () => {
    await start();
    const [a, b] = await Promise.all([
      api('POST', '/api/v1/vms', { user_id: 'bob' }),
      api('POST', '/api/v1/vms', { user_id: 'bob' }),
    ]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.body.ssh).toEqual(b.body.ssh);
    expect(a.body.agent_token).toBe(b.body.agent_token);
    expect(await vmProcesses(box!.socketDir)).toHaveLength(1);
    expect((await api('GET', '/api/v1/vms')).body.vms).toHaveLength(1);
  }, 180_000);

  it('answers 503 ORCH_IP_POOL_EXHAUSTED when the subnet is full and reuses freed addresses', async () => {
    // /29: .1 gateway, .6 user-mode DNS, .7 broadcast → .2-.5 for guests.
    await start({ VM_SUBNET: '10.0.1.0/29', GATEWAY_IP: '10.0.1.1' });
    const ips: string[] = [];
    for (const user of ['u1', 'u2', 'u3', 'u4']) {
      const r = await api('POST', '/api/v1/vms', { user_id: user });
      expect(r.status).toBe(200);
      ips.push(r.body.ip);
    }
    expect(ips.sort()).toEqual(['10.0.1.2', '10.0.1.3', '10.0.1.4', '10.0.1.5']);
    const full = await api('POST', '/api/v1/vms', { user_id: 'u5' });
    expect(full).toMatchObject({ status: 503, body: { code: 'ORCH_IP_POOL_EXHAUSTED' } });
    expect(await vmProcesses(box!.socketDir)).toHaveLength(4);

    expect((await api('DELETE', '/api/v1/vms/u2')).status).toBe(204);
    const reused = await api('POST', '/api/v1/vms', { user_id: 'u5' });
    expect(reused.body).toMatchObject({ state: 'running', ip: '10.0.1.3' });
    expect(await sshBanner(reused.body.ssh.port)).toBe(true);
  }, 300_000);

  it('enforces MAX_VMS with 503 ORCH_MAX_VMS', async () => {
    await start({ MAX_VMS: '1' });
    expect((await api('POST', '/api/v1/vms', { user_id: 'one' })).status).toBe(200);
    const second = await api('POST', '/api/v1/vms', { user_id: 'two' });
    expect(second).toMatchObject({ status: 503, body: { code: 'ORCH_MAX_VMS' } });
    expect((await api('GET', '/api/v1/vms/two')).status).toBe(404);
  }, 120_000);

  it('reports a guest that is not ready in time as 504 and leaks nothing', async () => {
    await start({ VM_READY_TIMEOUT_MS: '1000' });
    const r = await api('POST', '/api/v1/vms', { user_id: 'slow' });
    expect(r).toMatchObject({ status: 504, body: { code: 'ORCH_VM_NOT_READY' } });
    expect((await api('GET', '/api/v1/vms/slow')).body).toMatchObject({ state: 'error', ip: null });
    expect(await vmProcesses(box!.socketDir)).toHaveLength(0);
    expect((await api('GET', '/health', undefined, null)).body.vms).toBe(0);
  }, 60_000);

  it('stops a VM after VM_IDLE_TIMEOUT_S without touch and starts it again on the next create', async () => {
    await start({ VM_IDLE_TIMEOUT_S: '2' });
    const created = await api('POST', '/api/v1/vms', { user_id: 'idle' });
    expect(created.body.state).toBe('running');
    const touched = await api('POST', '/api/v1/vms/idle/touch');
    expect(touched.status).toBe(200);
    expect(Date.parse(touched.body.last_active_at)).toBeGreaterThanOrEqual(
      Date.parse(created.body.last_active_at),
    );
    expect((await api('POST', '/api/v1/vms/nobody/touch')).status).toBe(404);
    await waitFor(async () => (await api('GET', '/api/v1/vms/idle')).body.state === 'stopped', {
      timeoutMs: 30_000,
      what: 'the idle VM to be stopped',
    });
    expect(await vmProcesses(box!.socketDir)).toHaveLength(0);
    const again = await api('POST', '/api/v1/vms', { user_id: 'idle' });
    expect(again.body).toMatchObject({ state: 'running', agent_token: created.body.agent_token });
  }, 120_000);

  it('starts without a usable driver and answers creation with 503 and the reason', async () => {
    await start({ QEMU_BIN: '/nonexistent/qemu-system-x86_64' });
    const health = await api('GET', '/health', undefined, null);
    expect(health.body).toMatchObject({ status: 'degraded', driver: null });
    const r = await api('POST', '/api/v1/vms', { user_id: 'carol' });
    expect(r.status).toBe(503);
    expect(r.body.code).toBe('ORCH_NO_DRIVER');
    expect(r.body.message).toContain('/nonexistent/qemu-system-x86_64');
  });
});
