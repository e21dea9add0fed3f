import { describe, expect, it } from 'vitest';
import { parseVmRecord, resolveUpstream, type VmView } from './route.js';

const opts = { username: 'user', privateKey: 'KEY', afterStart: false };
const running: VmView = {
  userId: 'alice',
  state: 'running',
  ssh: { host: '127.0.0.1', port: 40022 },
  createdAt: '2026-01-01T00:00:00.000Z',
};

describe('resolveUpstream', () => {
  it('routes a running VM to its ssh endpoint with the gateway key', () => {
    expect(resolveUpstream({ openid: 'alice' }, running, opts)).toEqual({
      kind: 'upstream',
      target: {
        host: '127.0.0.1',
        port: 40022,
        username: 'user',
        auth: { privateKey: 'KEY' },
        vmCreatedAt: '2026-01-01T00:00:00.000Z',
      },
    });
  });

  it('adds the legacy password only when it is configured', () => {
    const r = resolveUpstream({ openid: 'alice' }, running, { ...opts, legacyPassword: 'clawdbot' });
    expect(r.kind === 'upstream' && r.target.auth).toEqual({ privateKey: 'KEY', password: 'clawdbot' });
  });

  it.each(['stopped', 'creating', 'error'] as const)('asks to start a %s VM once, then gives up', (state) => {
    const vm = { ...running, state, ssh: null };
    expect(resolveUpstream({ openid: 'alice' }, vm, opts)).toEqual({ kind: 'start' });
    expect(resolveUpstream({ openid: 'alice' }, vm, { ...opts, afterStart: true })).toMatchObject({
      kind: 'reject',
      code: 'SSHGW_VM_START_FAILED',
    });
  });

  it('asks to start when the user has no VM record yet', () => {
    expect(resolveUpstream({ openid: 'alice' }, null, opts)).toEqual({ kind: 'start' });
  });

  it('never routes to a record that belongs to another user', () => {
    expect(resolveUpstream({ openid: 'bob' }, running, opts)).toMatchObject({ kind: 'reject' });
  });

  it('refuses a running VM without an ssh endpoint', () => {
    expect(resolveUpstream({ openid: 'alice' }, { ...running, ssh: null }, opts)).toMatchObject({
      kind: 'reject',
      code: 'SSHGW_NO_VM_ENDPOINT',
    });
  });
});

describe('parseVmRecord', () => {
  it('reads the orchestrator record, ignoring fields the gateway does not use', () => {
    expect(
      parseVmRecord({
        user_id: 'alice',
        state: 'running',
        ip: '10.0.1.2',
        ssh: { host: '10.0.1.2', port: 22 },
        agent_url: 'http://10.0.1.2:8789/webhook',
        agent_token: 'secret',
        created_at: '2026-01-01T00:00:00.000Z',
        runtime: { vmId: 'vm-1' },
      }),
    ).toEqual({
      userId: 'alice',
      state: 'running',
      ssh: { host: '10.0.1.2', port: 22 },
      createdAt: '2026-01-01T00:00:00.000Z',
    });
  });

  it.each([
    null,
    'x',
    {},
    { user_id: 'a', state: 'flying' },
    { user_id: 'a', state: 'running', ssh: { host: 'h', port: 0 } },
  ])('rejects %j', (v) => {
    expect(parseVmRecord(v)).toBeNull();
  });
});
