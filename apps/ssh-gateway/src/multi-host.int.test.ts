import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@moltage/core';
import { buildImage, type RunningOrchestrator, runOrchestrator } from '@moltage/orchestrator';
import { type RedisServer, startRedis } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningSshGateway, runSshGateway } from './gateway.js';
import { clientOptions, runClient } from './test-support/openssh.js';
import { seedUser } from './test-support/seed.js';
import { keygen } from './test-support/sshd.js';

const TOKEN = 'gateway-multi-host-token-012345';
const IMAGE_DIR = process.env.MOLTAGE_TEST_IMAGE_DIR ?? '/var/tmp/moltage-test-images';
const CAROL = 'oCarol_0123456789abcdefghij';
const DAVE = 'oDave_0123456789abcdefghijk';

interface TestHost {
  id: string;
  orch: RunningOrchestrator;
  /** `METHOD /path` of every request since the last `mark()`. */
  requests(): string[];
  mark(): void;
}

/** Kills a VM process we started (its command line names our temp dir), if it still runs. */
async function killOurVm(pid: number, ourDir: string): Promise<void> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes(ourDir)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

describe('SSH gateway routing across two orchestrator hosts (real QEMU tiny VMs)', () => {
  let dir: string | undefined;
  let redisServer: RedisServer | undefined;
  let redis: Redis | undefined;
  let gw: RunningSshGateway | undefined;
  const hosts: TestHost[] = [];

  beforeAll(async () => {
    await buildImage({ kind: 'tiny', imageDir: IMAGE_DIR });
  }, 600_000);

  afterEach(async () => {
    await gw?.close();
    gw = undefined;
    for (const h of hosts.splice(0)) await h.orch.close().catch(() => {});
    // VMs a host kept running on purpose (VM_KEEP_ON_EXIT) are ours to stop.
    if (redis && dir) {
      for (const id of await redis.smembers('vms:all')) {
        const pid = JSON.parse((await redis.get(`vm:${id}`)) ?? '{}')?.runtime?.handle?.pid;
        if (typeof pid === 'number') await killOurVm(pid, dir);
      }
    }
    redis?.disconnect();
    redis = undefined;
    await redisServer?.stop();
    redisServer = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  }, 120_000);

  async function startHost(id: string, net: number, maxVms: number, extra: Record<string, string> = {}) {
    const lines: string[] = [];
    let from = 0;
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        cb();
      },
    });
    const base = join(dir!, id);
    const orch = await runOrchestrator({
      logger: createLogger({ name: id, level: 'info', destination: sink }),
      env: {
        PORT: '0',
        HOST: '127.0.0.1',
        REDIS_URL: redisServer!.url,
        ORCHESTRATOR_TOKEN: TOKEN,
        HOST_ID: id,
        HOST_HEARTBEAT_MS: '300',
        HOST_TTL_MS: '1500',
        VM_SUBNET: `10.0.${net}.0/24`,
        GATEWAY_IP: `10.0.${net}.1`,
        MAX_VMS: String(maxVms),
        VM_DRIVER: 'qemu',
        VM_IMAGE: 'tiny',
        VM_IMAGE_DIR: IMAGE_DIR,
        VM_NETWORK: 'user',
        VM_DATA_DIR: join(base, 'vms'),
        SOCKET_DIR: join(base, 'sock'),
        DEFAULT_MEM_MIB: '128',
        VM_DATA_DISK_MIB: '256',
        // Every guest trusts the gateway's upstream key (created on the gateway's first start).
        GATEWAY_SSH_PUBKEY_PATH: join(dir!, 'gateway', 'upstream_key.pub'),
        VM_READY_TIMEOUT_MS: '60000',
        ...extra,
      },
    });
    const host: TestHost = {
      id,
      orch,
      requests: () =>
        lines
          .slice(from)
          .map((l) => JSON.parse(l) as { msg?: string; req?: { method: string; url: string } })
          .filter((l) => l.msg === 'incoming request' && l.req)
          .map((l) => `${l.req!.method} ${l.req!.url}`),
      mark: () => {
        from = lines.length;
      },
    };
    hosts.push(host);
    return host;
  }

  async function api(h: TestHost, method: string, path: string, body?: unknown) {
    const res = await fetch(`${h.orch.publicUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  it('starts a user’s VM on its host, places a new user on the freest host, and says when the host is down', async () => {
    dir = await mkdtemp(join(tmpdir(), 'moltage-gw-hosts-'));
    redisServer = await startRedis();
    redis = new Redis(redisServer.url);
    // The default orchestrator URL answers nothing: with hosts registered it is never used.
    gw = await runSshGateway({
      env: {
        LISTEN_ADDR: '127.0.0.1:0',
        METRICS_ADDR: 'off',
        REDIS_URL: redisServer.url,
        ORCHESTRATOR_URL: 'http://127.0.0.1:9',
        ORCHESTRATOR_TOKEN: TOKEN,
        HOST_KEY_PATH: join(dir, 'gateway', 'host_key'),
        VM_SSH_USER: 'user',
        VM_START_TIMEOUT_MS: '90000',
        LOG_LEVEL: 'warn',
      },
    });
    const a = await startHost('host-a', 1, 3, { VM_KEEP_ON_EXIT: 'true' });
    const b = await startHost('host-b', 2, 2);
    const keys = {
      [CAROL]: await keygen(join(dir, 'id_carol'), 'carol'),
      [DAVE]: await keygen(join(dir, 'id_dave'), 'dave'),
    };
    await seedUser(redis, CAROL, [keys[CAROL]!.publicKey]);
    await seedUser(redis, DAVE, [keys[DAVE]!.publicKey]);
    const ssh = (user: string, command: string) =>
      runClient(
        'ssh',
        [
          ...clientOptions({
            port: gw!.port,
            knownHosts: join(dir!, 'known_hosts'),
            identity: keys[user]!.privatePath,
          }),
          `${user}@127.0.0.1`,
          command,
        ],
        { timeoutMs: 120_000 },
      );

    // Carol's VM lives on B and is stopped; her data disk is there.
    expect((await api(b, 'POST', '/api/v1/vms', { user_id: CAROL })).body).toMatchObject({
      host_id: 'host-b',
    });
    expect((await api(b, 'POST', `/api/v1/vms/${CAROL}/stop`)).body).toMatchObject({ state: 'stopped' });
    a.mark();
    b.mark();
    const carol = await ssh(CAROL, 'echo on-$(hostname)');
    expect(carol.stdout.toString()).toMatch(/^on-moltage-/);
    expect(b.requests()).toContain('POST /api/v1/vms');
    expect(a.requests().filter((r) => r.startsWith('POST'))).toEqual([]);
    expect(JSON.parse((await redis.get(`vm:${CAROL}`))!)).toMatchObject({
      host_id: 'host-b',
      state: 'running',
    });

    // Dave has no VM: A has 3 free slots, B 1; his VM is created on A.
    a.mark();
    b.mark();
    const dave = await ssh(DAVE, 'echo on-$(hostname)');
    expect(dave.stdout.toString()).toMatch(/^on-moltage-/);
    expect(JSON.parse((await redis.get(`vm:${DAVE}`))!)).toMatchObject({
      host_id: 'host-a',
      state: 'running',
    });
    expect(a.requests()).toContain('POST /api/v1/vms');
    expect(b.requests().filter((r) => r.startsWith('POST /api/v1/vms'))).toEqual([]);

    // A's orchestrator goes away (its heartbeat with it) but the VM keeps running, as during an
    // orchestrator restart: Dave still gets in.
    await a.orch.close();
    expect(await redis.get('host:host-a')).toBeNull();
    expect((await ssh(DAVE, 'echo still')).stdout.toString()).toBe('still\n');
    // Then the host itself is gone (the VM with it): Dave is told that the server of his VM is
    // unreachable, and no VM is started for him on B.
    const davePid = JSON.parse((await redis.get(`vm:${DAVE}`))!).runtime.handle.pid as number;
    await killOurVm(davePid, dir);
    b.mark();
    const down = await ssh(DAVE, 'echo hi');
    expect(down.code).not.toBe(0);
    expect(down.stderr).toContain('The server that hosts your VM is unreachable right now');
    expect(b.requests().filter((r) => r.startsWith('POST /api/v1/vms'))).toEqual([]);
    expect(await redis.smembers('vms:active:host-b')).toEqual([CAROL]);
    // Carol, on the live host, is not affected.
    expect((await ssh(CAROL, 'echo still')).stdout.toString()).toBe('still\n');
  }, 300_000);
});
