import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@moltage/core';
import { type RedisServer, startRedis } from '@moltage/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningSshGateway, runSshGateway } from './gateway.js';
import { clientOptions, runClient, writeAskpass } from './test-support/openssh.js';
import { startTestOrchestrator, type TestOrchestrator } from './test-support/orchestrator.js';
import { issuePassword, seedUser } from './test-support/seed.js';
import type { TestSshd } from './test-support/sshd.js';

// gateway.int.test.ts proves the per-user and per-address limits for attempts made one after the
// other. This file adds what an attacker would try next: many password guesses at once, over
// parallel connections, with a real OpenSSH client. The limit must hold however the guesses are
// spread in time: no more than AUTH_FAIL_LIMIT_PER_USER guesses may ever be checked.

const VICTIM = 'oVictim_0123456789abcdefghij';
const LIMIT = 3;
const PARALLEL = 16;

let dir: string;
let redisServer: RedisServer;
let redis: Redis;
let orch: TestOrchestrator;
let gw: RunningSshGateway;
let askpass: string;
let logs = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moltage-sshgw-brute-'));
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  askpass = await writeAskpass(dir);
  orch = await startTestOrchestrator({
    redis,
    token: randomBytes(16).toString('hex'),
    vms: new Map<string, TestSshd>(),
  });
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs += chunk.toString();
      cb();
    },
  });
  gw = await runSshGateway({
    env: {
      LISTEN_ADDR: '127.0.0.1:0',
      METRICS_ADDR: '127.0.0.1:0',
      REDIS_URL: redisServer.url,
      ORCHESTRATOR_URL: orch.url,
      ORCHESTRATOR_TOKEN: orch.token,
      HOST_KEY_PATH: join(dir, 'gateway', 'host_key'),
      AUTH_FAIL_LIMIT_PER_USER: String(LIMIT),
      AUTH_FAIL_LIMIT_PER_IP: '1000',
    },
    logger: createLogger({ name: 'ssh-gateway', level: 'debug', destination: sink }),
  });
  await seedUser(redis, VICTIM);
  await issuePassword(redis, VICTIM, 'TheRealOtp1234');
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await orch?.close();
  redis?.disconnect();
  await redisServer?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function guess(password: string) {
  const opts = clientOptions({ port: gw.port, knownHosts: join(dir, 'known_hosts') });
  return runClient('ssh', [...opts, `${VICTIM}@127.0.0.1`, 'true'], { askpass, password, timeoutMs: 60_000 });
}

describe('SSH brute force over parallel connections', () => {
  it(`checks at most ${LIMIT} password guesses for a user, even when ${PARALLEL} arrive at once`, async () => {
    const results = await Promise.all(Array.from({ length: PARALLEL }, (_, i) => guess(`wrong-guess-${i}`)));
    expect(results.every((r) => r.code === 255)).toBe(true);
    const lines = logs.split('\n').filter((l) => l.includes(VICTIM));
    const checked = lines.filter((l) => l.includes('"msg":"login failed"')).length;
    const refused = lines.filter((l) => l.includes('too many failed logins')).length;
    expect(checked + refused).toBe(PARALLEL);
    // The guesses that were actually verified against the one-time password.
    expect(
      checked,
      `${checked} of ${PARALLEL} parallel guesses were checked (limit ${LIMIT})`,
    ).toBeLessThanOrEqual(LIMIT);
    // And the real password is refused now too, and was not consumed.
    const real = await guess('TheRealOtp1234');
    expect(real.code).toBe(255);
    expect(await redis.exists(`sshotp:${VICTIM}`)).toBe(1);
  }, 120_000);
});
