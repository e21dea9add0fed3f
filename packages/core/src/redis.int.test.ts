import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type RedisServer, startRedis, waitFor } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseEnv } from './config.js';
import { createRedis, describeRedis, redisEnv } from './redis.js';

const schema = z.object(redisEnv);

/** Spawns a redis-server we own (a replica or a Sentinel) and waits until it answers PING. */
async function spawnRedis(args: string[], port: number, procs: ChildProcess[]): Promise<void> {
  const proc = spawn('redis-server', args, { stdio: 'ignore' });
  procs.push(proc);
  const probe = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on('error', () => {});
  try {
    await waitFor(
      async () => {
        try {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          probe.disconnect();
          return false;
        }
      },
      { timeoutMs: 10_000, what: `redis-server on ${port}` },
    );
  } finally {
    probe.disconnect();
  }
}

describe('Redis settings shared by all services', () => {
  it('parses REDIS_SENTINELS and names bad values', () => {
    const ok = parseEnv(schema, {
      REDIS_URL: 'redis://:pw@ignored:6379/2',
      REDIS_SENTINELS: '10.0.0.5:26379, [fd00::1]:26380',
    });
    expect(ok.REDIS_SENTINELS).toEqual([
      { host: '10.0.0.5', port: 26379 },
      { host: 'fd00::1', port: 26380 },
    ]);
    expect(ok.REDIS_SENTINEL_NAME).toBe('mymaster');
    expect(describeRedis(ok)).toBe('Sentinel master "mymaster" via 10.0.0.5:26379,[fd00::1]:26380');
    expect(describeRedis({ REDIS_URL: 'redis://:secret@db:6379/0' })).not.toContain('secret');
    expect(() => parseEnv(schema, { REDIS_SENTINELS: 'host-without-port' })).toThrow(/REDIS_SENTINELS/);
    expect(() => parseEnv(schema, { REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'bad name' })).toThrow(
      /REDIS_SENTINEL_NAME/,
    );
  });
});

describe('Redis through Sentinel (real redis-server primary, replica and Sentinel)', () => {
  let primary: RedisServer | undefined;
  let dir: string | undefined;
  const procs: ChildProcess[] = [];
  const clients: Redis[] = [];

  afterEach(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    for (const p of procs.splice(0)) {
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await exited;
      }
    }
    await primary?.stop();
    primary = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('finds the primary by name, uses the database of REDIS_URL, and follows a failover', async () => {
    primary = await startRedis({ appendonly: false });
    dir = await mkdtemp(join(tmpdir(), 'moltage-sentinel-'));
    const replicaPort = await freePort();
    await spawnRedis(
      [
        '--port',
        String(replicaPort),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--dir',
        dir,
        '--replicaof',
        '127.0.0.1',
        String(primary.port),
      ],
      replicaPort,
      procs,
    );
    const sentinelPort = await freePort();
    const conf = join(dir, 'sentinel.conf');
    await writeFile(
      conf,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor moltage 127.0.0.1 ${primary.port} 1`,
        'sentinel down-after-milliseconds moltage 1000',
        'sentinel failover-timeout moltage 10000',
        '',
      ].join('\n'),
    );
    await spawnRedis([conf, '--sentinel'], sentinelPort, procs);

    const settings = parseEnv(schema, {
      // Host and port are ignored with Sentinels; the database number is used.
      REDIS_URL: 'redis://ignored.invalid:1/3',
      REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`,
      REDIS_SENTINEL_NAME: 'moltage',
    });
    const client = createRedis(settings, { maxRetriesPerRequest: 5 });
    clients.push(client);
    client.on('error', () => {});
    await client.set('greeting', 'hello');

    const direct = new Redis(primary.port, '127.0.0.1', { db: 3 });
    clients.push(direct);
    expect(await direct.get('greeting')).toBe('hello');

    // Wait until the replica caught up and the Sentinel knows it, then fail over.
    const replica = new Redis(replicaPort, '127.0.0.1', { db: 3 });
    clients.push(replica);
    await waitFor(async () => (await replica.get('greeting')) === 'hello', {
      timeoutMs: 10_000,
      what: 'replication',
    });
    const sentinel = new Redis(sentinelPort, '127.0.0.1');
    clients.push(sentinel);
    await waitFor(
      async () => ((await sentinel.call('SENTINEL', 'REPLICAS', 'moltage')) as unknown[]).length > 0,
      { timeoutMs: 15_000, what: 'the Sentinel to see the replica' },
    );
    await sentinel.call('SENTINEL', 'FAILOVER', 'moltage');
    await waitFor(
      async () => {
        const addr = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'moltage')) as string[];
        return addr[1] === String(replicaPort);
      },
      { timeoutMs: 20_000, what: 'the failover' },
    );

    // The same client keeps working: its writes now land on the new primary.
    await waitFor(
      async () => {
        try {
          await client.set('after', 'failover');
          return (await replica.get('after')) === 'failover';
        } catch {
          return false;
        }
      },
      { timeoutMs: 20_000, what: 'writes to reach the new primary' },
    );
    expect(await replica.call('ROLE').then((r) => (r as unknown[])[0])).toBe('master');
  }, 60_000);
});
