import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type ChildService,
  freePort,
  type RedisServer,
  spawnService,
  startRedis,
  waitFor,
} from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Sandbox, sandbox, sshBanner, TEST_IMAGE_DIR, tinyImage, vmProcesses } from './test/helpers.js';

const exec = promisify(execFile);
const TOKEN = 'multi-host-token-0123456789ab';
const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Host {
  id: string;
  subnet: string;
  gateway: string;
  maxVms: number;
  port: number;
  box: Sandbox;
  proc?: ChildService;
}

/**
 * Two orchestrators (separate processes from dist/, as on two KVM hosts) on one Redis, with
 * distinct HOST_IDs, VM_SUBNETs, data and socket dirs; QEMU user networking, the tiny image.
 */
describe('several orchestrators on one Redis', () => {
  let redis: RedisServer | undefined;
  let r: Redis | undefined;
  const hosts: Host[] = [];
  const extra: ChildService[] = [];

  beforeAll(async () => {
    await exec('npx', ['tsc', '-b', pkgDir], { cwd: pkgDir, timeout: 240_000 });
    await tinyImage();
  }, 600_000);

  afterEach(async () => {
    for (const p of extra.splice(0)) await p.stop('SIGKILL').catch(() => {});
    for (const h of hosts) await h.proc?.stop('SIGTERM', 30_000).catch(() => {});
    for (const h of hosts.splice(0)) await h.box.cleanup();
    r?.disconnect();
    r = undefined;
    await redis?.stop();
    redis = undefined;
  }, 120_000);

  async function setup(specs: Array<{ id: string; net: number; maxVms: number }>) {
    redis = await startRedis();
    r = new Redis(redis.url);
    for (const s of specs) {
      hosts.push({
        id: s.id,
        subnet: `10.0.${s.net}.0/24`,
        gateway: `10.0.${s.net}.1`,
        maxVms: s.maxVms,
        port: await freePort(),
        box: await sandbox(),
      });
    }
    return hosts;
  }

  function envFor(h: Host, over: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      PORT: String(h.port),
      HOST: '127.0.0.1',
      REDIS_URL: redis!.url,
      LOG_LEVEL: 'info',
      ORCHESTRATOR_TOKEN: TOKEN,
      HOST_ID: h.id,
      HOST_HEARTBEAT_MS: '300',
      HOST_TTL_MS: '1500',
      VM_SUBNET: h.subnet,
      GATEWAY_IP: h.gateway,
      MAX_VMS: String(h.maxVms),
      VM_DRIVER: 'qemu',
      VM_IMAGE: 'tiny',
      VM_IMAGE_DIR: TEST_IMAGE_DIR,
      VM_NETWORK: 'user',
      VM_DATA_DIR: h.box.dataDir,
      SOCKET_DIR: h.box.socketDir,
      DEFAULT_MEM_MIB: '128',
      VM_DATA_DISK_MIB: '256',
      GATEWAY_SSH_PUBKEY_PATH: h.box.pubKeyPath,
      VM_READY_TIMEOUT_MS: '60000',
      ...over,
    };
  }

  async function launch(h: Host) {
    h.proc = spawnService('node', [mainJs], { env: envFor(h) });
    await h.proc.waitForOutput(/registered in the host registry/, 60_000);
  }

  /** Starts an orchestrator that must refuse to start; returns what it printed. */
  async function refused(env: NodeJS.ProcessEnv): Promise<string> {
    const p = spawnService('node', [mainJs], { env });
    extra.push(p);
    const code = await new Promise<number | null>((resolve) => p.proc.once('exit', (c) => resolve(c)));
    expect(code).toBe(1);
    return p.output();
  }

  async function api(h: Host, method: string, path: string, body?: unknown) {
    const res = await fetch(`http://127.0.0.1:${h.port}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** The guest's sshd still answers on its forwarded port (TCG guests can be slow to greet). */
  async function serving(port: number) {
    await waitFor(() => sshBanner(port), { timeoutMs: 30_000, what: `the guest sshd on port ${port}` });
  }

  async function entry(id: string) {
    const raw = await r!.get(`host:${id}`);
    return raw ? JSON.parse(raw) : null;
  }

  async function record(userId: string) {
    const raw = await r!.get(`vm:${userId}`);
    return raw ? JSON.parse(raw) : null;
  }

  it('registers each host with capacity and a heartbeat, refuses clashes, claims old records only when alone', async () => {
    const [a, b] = await setup([
      { id: 'host-a', net: 1, maxVms: 1 },
      { id: 'host-b', net: 2, maxVms: 3 },
    ]);
    // A record from a single-host release (no host_id) and its old slot set.
    await r!.set(
      'vm:olduser',
      JSON.stringify({
        user_id: 'olduser',
        state: 'stopped',
        ip: null,
        ssh: null,
        agent_url: null,
        agent_token: 't',
        created_at: '2026-01-01T00:00:00.000Z',
        last_active_at: '2026-01-01T00:00:00.000Z',
        vcpu: 1,
        mem_mib: 128,
        runtime: { vmId: 'vm-0000000000', handle: null, network: 'user' },
      }),
    );
    await r!.sadd('vms:all', 'olduser');
    await r!.sadd('vms:active', 'olduser');

    await launch(a!);
    const ea = await entry('host-a');
    expect(ea).toMatchObject({
      host_id: 'host-a',
      url: `http://127.0.0.1:${a!.port}`,
      accepting: true,
      subnet: '10.0.1.0/24',
      network: 'user',
      driver: 'qemu',
      max_vms: 1,
      active_vms: 0,
      vms_mem_mib: 0,
    });
    expect(ea.mem_total_mib).toBeGreaterThan(0);
    expect(ea.mem_available_mib).toBeGreaterThan(0);
    expect(await r!.pttl('host:host-a')).toBeLessThanOrEqual(1500);
    // Alone, it claims the old record for itself and drops the old slot set.
    expect(await record('olduser')).toMatchObject({
      host_id: 'host-a',
      host_url: `http://127.0.0.1:${a!.port}`,
    });
    expect(await r!.exists('vms:active')).toBe(0);

    // Another old record appears; B starts while A is live: B must not claim it.
    await r!.set(
      'vm:olduser2',
      JSON.stringify({
        ...(await record('olduser')),
        user_id: 'olduser2',
        host_id: undefined,
        host_url: undefined,
      }),
    );
    await r!.sadd('vms:all', 'olduser2');
    await launch(b!);
    expect((await record('olduser2')).host_id).toBeUndefined();
    expect(await r!.zrange('hosts', 0, -1)).toEqual(expect.arrayContaining(['host-a', 'host-b']));
    expect((await api(b!, 'GET', '/health')).body).toMatchObject({
      host_id: 'host-b',
      url: `http://127.0.0.1:${b!.port}`,
    });

    // The heartbeat keeps the entry alive well past its TTL.
    const firstBeat = ea.heartbeat_at;
    await new Promise((res) => setTimeout(res, 2000));
    expect((await entry('host-a')).heartbeat_at).not.toBe(firstBeat);

    // Clashing setups are refused before they touch anything.
    const c = { ...a!, port: await freePort(), box: await sandbox() };
    hosts.push({ ...c, id: 'host-c-box' });
    const sameSubnet = await refused(envFor({ ...c, id: 'host-c', subnet: b!.subnet, gateway: b!.gateway }));
    expect(sameSubnet).toContain('VM_SUBNET 10.0.2.0/24 is already used by host host-b');
    const sameId = await refused(envFor({ ...c, id: 'host-a', subnet: '10.0.3.0/24', gateway: '10.0.3.1' }));
    expect(sameId).toContain('HOST_ID host-a is already registered by a live orchestrator');
    const sameDirs = await refused(
      envFor(
        { ...c, id: 'host-c', subnet: '10.0.3.0/24', gateway: '10.0.3.1' },
        { SOCKET_DIR: a!.box.socketDir },
      ),
    );
    expect(sameDirs).toContain(`SOCKET_DIR ${a!.box.socketDir} is already used by host host-a`);
    expect(await entry('host-c')).toBeNull();

    // SIGKILL: no goodbye; the entry expires after HOST_TTL_MS while B stays live.
    await a!.proc!.stop('SIGKILL');
    await waitFor(async () => (await entry('host-a')) === null, {
      timeoutMs: 5000,
      what: 'host-a to expire',
    });
    expect(await entry('host-b')).not.toBeNull();
    // A clean shutdown leaves the registry at once.
    await b!.proc!.stop('SIGTERM', 30_000);
    expect(await entry('host-b')).toBeNull();
    expect(await r!.zrange('hosts', 0, -1)).not.toContain('host-b');
  }, 180_000);

  it('keeps VMs, slots, addresses and locks per host: a killed or restarted host never touches the other', async () => {
    const [a, b] = await setup([
      { id: 'host-a', net: 1, maxVms: 1 },
      { id: 'host-b', net: 2, maxVms: 1 },
    ]);
    await launch(a!);
    await launch(b!);

    const va = await api(a!, 'POST', '/api/v1/vms', { user_id: 'alice' });
    expect(va.body).toMatchObject({
      state: 'running',
      host_id: 'host-a',
      host_url: `http://127.0.0.1:${a!.port}`,
    });
    expect(va.body.ip).toMatch(/^10\.0\.1\./);
    // MAX_VMS is per host: A is full, B still takes a VM.
    expect(await api(a!, 'POST', '/api/v1/vms', { user_id: 'amy' })).toMatchObject({
      status: 503,
      body: { code: 'ORCH_MAX_VMS' },
    });
    const vb = await api(b!, 'POST', '/api/v1/vms', { user_id: 'bob' });
    expect(vb.body).toMatchObject({ state: 'running', host_id: 'host-b' });
    expect(vb.body.ip).toMatch(/^10\.0\.2\./);
    await waitFor(
      async () => (await entry('host-a'))?.active_vms === 1 && (await entry('host-b'))?.active_vms === 1,
      {
        timeoutMs: 5000,
        what: 'both registry entries to count their VM',
      },
    );
    expect((await entry('host-a')).vms_mem_mib).toBe(128);

    // B refuses to manage A's VM (its data disk is on A) and says where it lives.
    const moved = {
      code: 'ORCH_VM_ON_OTHER_HOST',
      host_id: 'host-a',
      host_url: `http://127.0.0.1:${a!.port}`,
    };
    expect(await api(b!, 'POST', '/api/v1/vms', { user_id: 'alice' })).toMatchObject({
      status: 409,
      body: moved,
    });
    expect(await api(b!, 'POST', '/api/v1/vms/alice/stop')).toMatchObject({ status: 409, body: moved });
    expect(await api(b!, 'DELETE', '/api/v1/vms/alice')).toMatchObject({ status: 409, body: moved });
    expect(await api(b!, 'DELETE', '/api/v1/vms/alice?forget=true')).toMatchObject({
      status: 409,
      body: moved,
    });
    expect(
      (await api(b!, 'GET', '/api/v1/vms?host_id=host-b')).body.vms.map(
        (v: { user_id: string }) => v.user_id,
      ),
    ).toEqual(['bob']);
    expect((await api(b!, 'GET', '/health')).body.vms).toBe(1);

    // Locks are global: one held by B (an operation in flight) and one A's dead process left.
    await r!.set('lock:vm:carol', 'host-b:inflight:1', 'PX', 600_000);
    await r!.set('lock:vm:dave', 'host-a:deadprocess:2', 'PX', 600_000);
    const bobBefore = await r!.get('vm:bob');
    const poolB = await r!.hgetall('ippool:10.0.2.0/24');
    const [bobProc] = await vmProcesses(b!.box.socketDir);
    const [aliceProc] = await vmProcesses(a!.box.socketDir);

    // A dies without cleaning up, then comes back and reconciles: only its own VM and lock.
    await a!.proc!.stop('SIGKILL');
    await launch(a!);
    expect(await record('alice')).toMatchObject({ state: 'running', host_id: 'host-a', ip: va.body.ip });
    expect((await vmProcesses(a!.box.socketDir)).map((p) => p.pid)).toEqual([aliceProc!.pid]);
    expect(await r!.get('lock:vm:dave')).toBeNull();
    expect(await r!.get('lock:vm:carol')).toBe('host-b:inflight:1');
    expect(await r!.get('vm:bob')).toBe(bobBefore);
    expect(await r!.hgetall('ippool:10.0.2.0/24')).toEqual(poolB);
    expect(await r!.smembers('vms:active:host-b')).toEqual(['bob']);
    expect((await vmProcesses(b!.box.socketDir)).map((p) => p.pid)).toEqual([bobProc!.pid]);
    await serving(vb.body.ssh.port);

    // A's clean shutdown stops A's VMs only.
    await a!.proc!.stop('SIGTERM', 30_000);
    expect(await record('alice')).toMatchObject({ state: 'stopped', host_id: 'host-a' });
    expect(await vmProcesses(a!.box.socketDir)).toEqual([]);
    expect(await record('bob')).toMatchObject({ state: 'running' });
    await serving(vb.body.ssh.port);
    expect(await r!.hgetall('ippool:10.0.1.0/24')).toEqual({});

    // With A down for good, an operator may forget alice's record on another host (her data
    // disk stays on A); B's own VMs are untouched.
    expect((await api(b!, 'DELETE', '/api/v1/vms/alice?forget=true&purge=true')).status).toBe(400);
    expect((await api(b!, 'DELETE', '/api/v1/vms/alice?forget=true')).status).toBe(204);
    expect(await record('alice')).toBeNull();
    expect(await r!.sismember('vms:all', 'alice')).toBe(0);
    expect(await record('bob')).toMatchObject({ state: 'running' });
  }, 300_000);
});
