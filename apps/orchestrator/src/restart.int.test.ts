import { execFile } from 'node:child_process';
import { access, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type ChildService, freePort, type RedisServer, spawnService, startRedis } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  callApi,
  type Sandbox,
  sandbox,
  sshBanner,
  TEST_IMAGE_DIR,
  tinyImage,
  vmProcesses,
} from './test/helpers.js';

const exec = promisify(execFile);
const TOKEN = 'restart-token-0123456789abcdef';
const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('orchestrator restart after SIGKILL', () => {
  let redis: RedisServer | undefined;
  let box: Sandbox | undefined;
  let proc: ChildService | undefined;
  let port = 0;

  beforeAll(async () => {
    // The orchestrator runs as its own process here, from its build output.
    await exec('npx', ['tsc', '-b', pkgDir], { cwd: pkgDir, timeout: 240_000 });
    await tinyImage();
  }, 600_000);

  afterEach(async () => {
    await proc?.stop('SIGTERM', 30_000).catch(() => {});
    await box?.cleanup();
    await redis?.stop();
    proc = undefined;
    box = undefined;
    redis = undefined;
  }, 120_000);

  async function launch() {
    proc = spawnService('node', [mainJs], {
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: redis!.url,
        HOST_ID: 'restart-host',
        LOG_LEVEL: 'info',
        ORCHESTRATOR_TOKEN: TOKEN,
        VM_DRIVER: 'qemu',
        VM_IMAGE: 'tiny',
        VM_IMAGE_DIR: TEST_IMAGE_DIR,
        VM_NETWORK: 'user',
        VM_DATA_DIR: box!.dataDir,
        SOCKET_DIR: box!.socketDir,
        DEFAULT_MEM_MIB: '128',
        VM_DATA_DISK_MIB: '256',
        GATEWAY_SSH_PUBKEY_PATH: box!.pubKeyPath,
        VM_READY_TIMEOUT_MS: '60000',
      },
    });
    await proc.waitForOutput(/Server listening/, 60_000);
    return proc;
  }

  const api = (method: string, path: string, body?: unknown) =>
    callApi(`http://127.0.0.1:${port}`, TOKEN, method, path, body);

  it('adopts a running VM, cleans up a dead one, and leaks nothing', async () => {
    redis = await startRedis();
    box = await sandbox();
    port = await freePort();
    await launch();
    const created = await api('POST', '/api/v1/vms', { user_id: 'dora' });
    expect(created.body.state).toBe('running');
    const [vmProc] = await vmProcesses(box.socketDir);
    expect(vmProc).toBeDefined();

    // SIGKILL: no chance to clean up. The VM keeps running; a new orchestrator adopts it.
    await proc!.stop('SIGKILL');
    await launch();
    const adopted = await api('GET', '/api/v1/vms/dora');
    expect(adopted.body).toMatchObject({ state: 'running', ip: created.body.ip, ssh: created.body.ssh });
    expect((await vmProcesses(box.socketDir)).map((p) => p.pid)).toEqual([vmProc!.pid]);
    expect(await sshBanner(created.body.ssh.port)).toBe(true);
    // Still managed: a create returns the same VM, not a second one.
    expect((await api('POST', '/api/v1/vms', { user_id: 'dora' })).body.ssh).toEqual(created.body.ssh);
    expect(await vmProcesses(box.socketDir)).toHaveLength(1);

    // SIGKILL again, and the VM dies while nobody watches: the next orchestrator cleans up.
    await proc!.stop('SIGKILL');
    process.kill(vmProc!.pid, 'SIGKILL');
    await launch();
    const dead = await api('GET', '/api/v1/vms/dora');
    expect(dead.body).toMatchObject({ state: 'stopped', ip: null });
    const r = new Redis(redis.url);
    try {
      expect(await r.hgetall('ippool:10.0.1.0/24')).toEqual({});
      expect(await r.smembers('vms:active:restart-host')).toEqual([]);
      expect(await r.keys('lock:*')).toEqual([]);
    } finally {
      r.disconnect();
    }
    expect(await readdir(box.socketDir)).toEqual([]);

    // The user's next message starts it again on the same data disk.
    const restarted = await api('POST', '/api/v1/vms', { user_id: 'dora' });
    expect(restarted.body).toMatchObject({ state: 'running', agent_token: created.body.agent_token });
    await access(`${box.dataDir}/dora/data.img`);

    // A VM whose record is lost (SIGKILL, then the record removed) is an orphan: killed.
    await proc!.stop('SIGKILL');
    const r3 = new Redis(redis.url);
    try {
      await r3.del('vm:dora');
      await r3.srem('vms:all', 'dora');
    } finally {
      r3.disconnect();
    }
    expect(await vmProcesses(box.socketDir)).toHaveLength(1);
    await launch();
    expect(await vmProcesses(box.socketDir)).toEqual([]);
    expect(await readdir(box.socketDir)).toEqual([]);

    // SIGTERM stops VMs and frees everything.
    expect((await api('POST', '/api/v1/vms', { user_id: 'erin' })).body.state).toBe('running');
    await proc!.stop('SIGTERM', 30_000);
    expect(await vmProcesses(box.socketDir)).toEqual([]);
    const r2 = new Redis(redis.url);
    try {
      expect(await r2.hgetall('ippool:10.0.1.0/24')).toEqual({});
      expect(await r2.get('vm:erin').then((v) => JSON.parse(v!).state)).toBe('stopped');
    } finally {
      r2.disconnect();
    }
  }, 300_000);
});
