import { type RedisServer, startRedis } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { callVmHost, type HostCallFailure, HostDirectory, type HostInfo, hostKeys } from './hosts.js';

function host(id: string, o: Partial<HostInfo> = {}): HostInfo {
  return {
    host_id: id,
    url: `http://${id}.example.test:8080`,
    accepting: true,
    problem: null,
    subnet: `10.0.${id.length}.0/24`,
    network: 'tap',
    driver: 'qemu',
    max_vms: 4,
    active_vms: 0,
    vms_mem_mib: 0,
    mem_total_mib: 4096,
    mem_available_mib: 2048,
    vcpus: 2,
    started_at: new Date().toISOString(),
    heartbeat_at: new Date().toISOString(),
    ttl_ms: 60_000,
    instance: `i-${id}`,
    machine_id: `m-${id}`,
    ...o,
  };
}

class Refusal extends Error {
  constructor(readonly kind: HostCallFailure) {
    super(kind);
  }
}

describe('host directory and routed calls (real Redis)', () => {
  let server: RedisServer | undefined;
  let redis: Redis;
  let dir: HostDirectory;
  const calls: string[] = [];

  beforeEach(async () => {
    server = await startRedis({ appendonly: false });
    redis = new Redis(server.url);
    dir = new HostDirectory(redis);
    calls.length = 0;
  });

  afterEach(async () => {
    redis?.disconnect();
    await server?.stop();
    server = undefined;
  });

  async function announce(h: HostInfo, ttlMs = 60_000) {
    await redis.set(hostKeys.host(h.host_id), JSON.stringify(h), 'PX', ttlMs);
    await redis.zadd(hostKeys.hosts(), Date.now(), h.host_id);
  }

  /** A call that answers per URL: a value, or a refusal of some kind. */
  function caller(answers: Record<string, HostCallFailure | 'ok'>) {
    return {
      call: async (url: string) => {
        calls.push(url);
        const a = answers[url] ?? 'ok';
        if (a !== 'ok') throw new Refusal(a);
        return `served by ${url}`;
      },
      classify: (err: unknown) => (err instanceof Refusal ? err.kind : 'fail'),
      hostDown: (id: string) => new Error(`host ${id} is down`),
    } as const;
  }

  it('uses ORCHESTRATOR_URL when no host is registered, and for records from before the registry', async () => {
    const c = caller({});
    expect(await callVmHost(dir, { openid: 'u1', defaultUrl: 'http://default', place: true, ...c })).toBe(
      'served by http://default',
    );
    await announce(host('a'));
    await redis.set(hostKeys.vm('old'), JSON.stringify({ user_id: 'old', state: 'stopped' }));
    expect(await callVmHost(dir, { openid: 'old', defaultUrl: 'http://default', place: true, ...c })).toBe(
      'served by http://default',
    );
  });

  it('places a new VM on the host with the most free capacity; an existing VM goes to its host', async () => {
    await announce(host('a', { max_vms: 2, active_vms: 2 }));
    await announce(host('bb', { max_vms: 2, active_vms: 1 }));
    const c = caller({});
    expect(await callVmHost(dir, { openid: 'new', defaultUrl: 'http://default', place: true, ...c })).toBe(
      'served by http://bb.example.test:8080',
    );
    await redis.set(hostKeys.vm('mine'), JSON.stringify({ user_id: 'mine', host_id: 'a' }));
    expect(await callVmHost(dir, { openid: 'mine', defaultUrl: 'http://default', place: true, ...c })).toBe(
      'served by http://a.example.test:8080',
    );
  });

  it('tries the next host when one refuses for capacity or is unreachable', async () => {
    await announce(host('a', { max_vms: 9 }));
    await announce(host('bb', { max_vms: 5 }));
    await announce(host('ccc', { max_vms: 1 }));
    const c = caller({
      'http://a.example.test:8080': 'next-host',
      'http://bb.example.test:8080': 'next-host',
    });
    expect(await callVmHost(dir, { openid: 'u', defaultUrl: 'http://default', place: true, ...c })).toBe(
      'served by http://ccc.example.test:8080',
    );
    expect(calls).toEqual([
      'http://a.example.test:8080',
      'http://bb.example.test:8080',
      'http://ccc.example.test:8080',
    ]);
  });

  it('follows a VM that another bridge placed meanwhile, once', async () => {
    await announce(host('a', { max_vms: 9 }));
    await announce(host('bb', { max_vms: 1 }));
    const moved = caller({ 'http://a.example.test:8080': 'moved' });
    const call = moved.call;
    const p = callVmHost(dir, {
      openid: 'race',
      defaultUrl: 'http://default',
      place: true,
      ...moved,
      call: async (url: string) => {
        // Host a answers "this VM is on bb" — as it would after another bridge placed it there.
        if (url.startsWith('http://a.'))
          await redis.set(hostKeys.vm('race'), JSON.stringify({ host_id: 'bb' }));
        return call(url);
      },
    });
    expect(await p).toBe('served by http://bb.example.test:8080');
  });

  it('never recreates a VM elsewhere when its host is down', async () => {
    await announce(host('a'), 300);
    await announce(host('bb'));
    await redis.set(hostKeys.vm('u'), JSON.stringify({ user_id: 'u', host_id: 'a', host_url: 'http://a' }));
    await new Promise((r) => setTimeout(r, 400));
    expect((await dir.live()).map((h) => h.host_id)).toEqual(['bb']);
    expect(await dir.target('u')).toEqual({ kind: 'down', hostId: 'a', url: 'http://a' });
    const c = caller({});
    await expect(
      callVmHost(dir, { openid: 'u', defaultUrl: 'http://default', place: true, ...c }),
    ).rejects.toThrow('host a is down');
    expect(calls).toEqual([]);
  });

  it('sends reads and stops of users without a VM to ORCHESTRATOR_URL, never to a placement', async () => {
    await announce(host('a'));
    const c = caller({});
    expect(
      await callVmHost(dir, { openid: 'nobody', defaultUrl: 'http://default', place: false, ...c }),
    ).toBe('served by http://default');
  });
});
