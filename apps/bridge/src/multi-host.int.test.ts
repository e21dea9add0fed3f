import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { createLogger } from '@moltage/core';
import { buildImage, type RunningOrchestrator, runOrchestrator } from '@moltage/orchestrator';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { T } from './domain/texts.js';
import { type Harness, startHarness, waitFor } from './test-support/harness.js';

const exec = promisify(execFile);
const TOKEN = 'bridge-multi-host-token-0123456';
const IMAGE_DIR = process.env.MOLTAGE_TEST_IMAGE_DIR ?? '/var/tmp/moltage-test-images';

/** A real orchestrator (in process) with its own host id, subnet and dirs; records its requests. */
interface TestHost {
  id: string;
  orch: RunningOrchestrator;
  /** `METHOD /path` of every request it received since the last `mark()`. */
  requests(): string[];
  mark(): void;
}

describe('bridge routing across two orchestrator hosts (real QEMU tiny VMs)', () => {
  let h: Harness | undefined;
  let dir: string | undefined;
  const hosts: TestHost[] = [];

  beforeAll(async () => {
    await buildImage({ kind: 'tiny', imageDir: IMAGE_DIR });
  }, 600_000);

  afterEach(async () => {
    // Orchestrators first: they stop their VMs through Redis, which the harness owns.
    for (const host of hosts.splice(0)) await host.orch.close().catch(() => {});
    // Whatever a failed close left running: only processes whose command line names our dir.
    if (h && dir) {
      for (const id of await h.r.smembers('vms:all')) {
        const pid = JSON.parse((await h.r.get(`vm:${id}`)) ?? '{}')?.runtime?.handle?.pid;
        const cmdline =
          typeof pid === 'number' ? await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '') : '';
        if (cmdline.includes(dir)) process.kill(pid, 'SIGKILL');
      }
    }
    await h?.close();
    h = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  }, 120_000);

  async function startHost(id: string, net: number, maxVms: number, redisUrl: string): Promise<TestHost> {
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
        REDIS_URL: redisUrl,
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
        GATEWAY_SSH_PUBKEY_PATH: join(dir!, 'key.pub'),
        VM_READY_TIMEOUT_MS: '60000',
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

  async function entry(id: string) {
    const raw = await h!.r.get(`host:${id}`);
    return raw ? (JSON.parse(raw) as { active_vms: number }) : null;
  }

  it('places new users on the host with most free capacity, routes each user to their VM’s host, and says so when that host is down', async () => {
    h = await startHarness({ bridge: false });
    dir = await mkdtemp(join(tmpdir(), 'moltage-bridge-hosts-'));
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
    const a = await startHost('host-a', 1, 1, h.redis.url);
    const b = await startHost('host-b', 2, 2, h.redis.url);
    // The default orchestrator URL answers nothing: with hosts registered it is never used.
    const bridge = await h.startBridge({
      ORCHESTRATOR_URL: 'http://127.0.0.1:9',
      ORCHESTRATOR_TOKEN: TOKEN,
      VM_READY_TIMEOUT_MS: '60000',
    });
    h.pointSimAt(bridge.url);

    // u0 already has a VM on host A (A is now full: MAX_VMS=1).
    const u0 = await h.newUser();
    const created = await fetch(`${a.orch.publicUrl}/api/v1/vms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: u0 }),
    });
    expect(created.status).toBe(200);
    await waitFor(async () => (await entry('host-a'))?.active_vms === 1, { what: 'host A to report its VM' });
    a.mark();
    b.mark();

    // A new user's first message: the VM goes to B (A has no free slot). The tiny image has no
    // agent, so the user is told the assistant is unreachable — after the VM was created on B.
    const u1 = await h.newUser();
    await h.client.sendText(u1, '你好');
    await waitFor(async () => (await h!.texts(u1)).includes(T.agentUnreachable), {
      timeoutMs: 90_000,
      what: 'the answer to u1',
    });
    expect(JSON.parse((await h.r.get(`vm:${u1}`))!)).toMatchObject({ host_id: 'host-b', state: 'running' });
    expect(b.requests()).toContain('POST /api/v1/vms');
    expect(a.requests().filter((r) => r.startsWith('POST'))).toEqual([]);

    // The existing user's message goes to A, the host that owns the VM, not to the freer B.
    a.mark();
    b.mark();
    await h.client.sendText(u0, '在吗');
    await waitFor(async () => (await h!.texts(u0)).includes(T.agentUnreachable), {
      timeoutMs: 60_000,
      what: 'the answer to u0',
    });
    expect(a.requests()).toContain('POST /api/v1/vms');
    expect(b.requests()).toEqual([]);

    // Host A goes away (heartbeat gone). u0 is told the server is unreachable; no second VM is
    // created on B (u0's data disk lives on A).
    await a.orch.close();
    expect(await entry('host-a')).toBeNull();
    b.mark();
    await h.client.sendText(u0, '还在吗');
    await waitFor(async () => (await h!.texts(u0)).includes(T.vmHostDown), {
      timeoutMs: 30_000,
      what: 'the host-down notice',
    });
    await h.client.sendText(u0, 'status');
    await waitFor(async () => (await h!.texts(u0)).some((t) => t.includes('所在服务器暂时无法访问')), {
      timeoutMs: 30_000,
      what: 'the status answer',
    });
    expect(b.requests().filter((r) => r.includes('/api/v1/vms'))).toEqual([]);
    expect(JSON.parse((await h.r.get(`vm:${u0}`))!)).toMatchObject({ host_id: 'host-a' });
    expect(await h.r.smembers('vms:active:host-b')).toEqual([u1]);
  }, 300_000);
});
