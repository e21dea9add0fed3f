import type { AddressInfo } from 'node:net';
import { createLogger } from '@moltage/core';
import { type RedisServer, startRedis } from '@moltage/testkit';
import { Redis } from 'ioredis';
import ssh2, { type AuthContext, type Server } from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamTarget } from '../domain/route.js';
import { GatewayError } from '../errors.js';
import { generateEd25519Key } from './openssh-key.js';
import { RedisHostKeyPins } from './redis-store.js';
import { connectUpstream } from './upstream.js';

/**
 * A real SSH server (ssh2) as the VM side, to cover what the OpenSSH tests cannot set up as
 * root without touching system accounts: the legacy password fallback, and host key changes.
 */
const { utils } = ssh2;
const gatewayKey = generateEd25519Key('gateway');
const logger = createLogger({ name: 'test', level: 'silent' });

let redisServer: RedisServer;
let redis: Redis;
let pins: RedisHostKeyPins;
const servers: Server[] = [];

async function vmServer(opts: {
  acceptKey: boolean;
  password?: string;
  hostKey?: string;
}): Promise<{ port: number; hostKey: string }> {
  const hostKey = opts.hostKey ?? generateEd25519Key('vm').privateKey;
  const allowed = utils.parseKey(gatewayKey.publicKey);
  if (allowed instanceof Error || Array.isArray(allowed)) throw new Error('bad test key');
  const server = new ssh2.Server({ hostKeys: [hostKey] }, (client) => {
    client.on('authentication', (ctx: AuthContext) => {
      if (ctx.method === 'publickey' && opts.acceptKey && ctx.key.data.equals(allowed.getPublicSSH())) {
        if (!ctx.signature || allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo)) return ctx.accept();
      }
      if (ctx.method === 'password' && opts.password !== undefined && ctx.password === opts.password)
        return ctx.accept();
      ctx.reject(['publickey', 'password']);
    });
    client.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, hostKey };
}

function target(port: number, extra: Partial<UpstreamTarget> = {}): UpstreamTarget {
  return {
    host: '127.0.0.1',
    port,
    username: 'user',
    auth: { privateKey: gatewayKey.privateKey },
    vmCreatedAt: '2026-01-01T00:00:00.000Z',
    ...extra,
  };
}

async function attempt(openid: string, t: UpstreamTarget): Promise<GatewayError | 'ok'> {
  try {
    const c = await connectUpstream(openid, t, { pins, logger, timeoutMs: 5000 });
    c.end();
    return 'ok';
  } catch (err) {
    return err as GatewayError;
  }
}

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  pins = new RedisHostKeyPins(redis);
});
afterEach(async () => {
  for (const s of servers.splice(0)) s.close();
});
afterAll(async () => {
  redis?.disconnect();
  await redisServer?.stop();
});

describe('upstream login', () => {
  it('logs in with the gateway key and pins the VM host key', async () => {
    const vm = await vmServer({ acceptKey: true });
    expect(await attempt('u1', target(vm.port))).toBe('ok');
    expect(await pins.get('u1')).toMatchObject({ vmCreatedAt: '2026-01-01T00:00:00.000Z' });
  });

  it('uses the legacy password only when the key is refused and the fallback is on', async () => {
    const vm = await vmServer({ acceptKey: false, password: 'clawdbot' });
    const without = await attempt('u2', target(vm.port));
    expect(without).toBeInstanceOf(GatewayError);
    expect((without as GatewayError).code).toBe('SSHGW_VM_AUTH_FAILED');
    const withFallback = await attempt(
      'u2',
      target(vm.port, { auth: { privateKey: gatewayKey.privateKey, password: 'clawdbot' } }),
    );
    expect(withFallback).toBe('ok');
  });

  it('refuses a different host key for the same VM record, and re-pins for a new record', async () => {
    const first = await vmServer({ acceptKey: true });
    expect(await attempt('u3', target(first.port))).toBe('ok');
    const impostor = await vmServer({ acceptKey: true });
    const refused = await attempt('u3', target(impostor.port));
    expect((refused as GatewayError).code).toBe('SSHGW_VM_HOST_KEY_MISMATCH');
    // The same host key on another address is still the same VM.
    const moved = await vmServer({ acceptKey: true, hostKey: first.hostKey });
    expect(await attempt('u3', target(moved.port))).toBe('ok');
    // A VM record created anew (deleted and recreated by the orchestrator) starts a new trust period.
    expect(await attempt('u3', target(impostor.port, { vmCreatedAt: '2026-03-01T00:00:00.000Z' }))).toBe(
      'ok',
    );
    expect(
      await attempt('u3', target(first.port, { vmCreatedAt: '2026-03-01T00:00:00.000Z' })),
    ).toMatchObject({
      code: 'SSHGW_VM_HOST_KEY_MISMATCH',
    });
  });

  it('reports a VM that does not listen as unreachable', async () => {
    const vm = await vmServer({ acceptKey: true });
    const closing = servers.pop()!;
    await new Promise<void>((resolve) => closing.close(() => resolve()));
    const err = await attempt('u4', target(vm.port));
    expect((err as GatewayError).code).toBe('SSHGW_VM_UNREACHABLE');
  });
});
