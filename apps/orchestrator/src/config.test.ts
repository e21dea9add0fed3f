import { type ConfigError, parseEnv } from '@moltage/core';
import { describe, expect, it } from 'vitest';
import { tapRuleset } from './adapters/tap-network.js';
import { configSchema, defaultHostId } from './config.js';
import { parseCidr } from './domain/ip-pool.js';
import { defaultPublicUrl } from './orchestrator.js';

function problems(env: Record<string, string>): string[] {
  try {
    parseEnv(configSchema, env);
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
}

describe('host registry settings', () => {
  it('defaults HOST_ID to the hostname, made a valid id', () => {
    expect(defaultHostId('kvm-01.example.com')).toBe('kvm-01.example.com');
    expect(defaultHostId('_weird host!')).toBe('weird-host-');
    expect(defaultHostId('')).toBe('host');
    const c = parseEnv(configSchema, {});
    expect(c.HOST_ID).toBe(defaultHostId());
    expect(c.ORCHESTRATOR_PUBLIC_URL).toBeUndefined();
    expect([c.HOST_HEARTBEAT_MS, c.HOST_TTL_MS]).toEqual([5000, 15_000]);
  });

  it('names bad values', () => {
    expect(problems({ HOST_ID: 'has space' })[0]).toMatch(/^Invalid environment variable HOST_ID/);
    expect(problems({ ORCHESTRATOR_PUBLIC_URL: 'ftp://x' })[0]).toMatch(/ORCHESTRATOR_PUBLIC_URL/);
    expect(problems({ HOST_HEARTBEAT_MS: '5000', HOST_TTL_MS: '6000' })[0]).toMatch(
      /HOST_TTL_MS: must be at least twice HOST_HEARTBEAT_MS/,
    );
    expect(problems({ REDIS_SENTINELS: 'nope' })[0]).toMatch(/REDIS_SENTINELS/);
    expect(problems({ VM_INGRESS_FROM: '192.0.2.1,300.1.1.1' })[0]).toMatch(/VM_INGRESS_FROM/);
    expect(problems({ VM_INGRESS_FROM: '192.0.2.0/33' })[0]).toMatch(/VM_INGRESS_FROM/);
    expect(
      parseEnv(configSchema, { VM_INGRESS_FROM: ' 192.0.2.10, 198.51.100.0/28 ' }).VM_INGRESS_FROM,
    ).toEqual(['192.0.2.10', '198.51.100.0/28']);
  });

  it('derives the public URL from HOST and PORT', () => {
    expect(defaultPublicUrl('127.0.0.1', 8080)).toBe('http://127.0.0.1:8080');
    expect(defaultPublicUrl('kvm-1.internal', 9000)).toBe('http://kvm-1.internal:9000');
    expect(defaultPublicUrl('0.0.0.0', 8080)).toMatch(/^http:\/\/\d+\.\d+\.\d+\.\d+:8080$/);
  });
});

describe('tap firewall', () => {
  const base = {
    table: 'moltage_br0',
    bridge: 'br0',
    subnet: parseCidr('10.0.2.0/24'),
    gatewayIp: '10.0.2.1',
    callbackPort: 3000,
    guestPorts: { ssh: 22, agent: 8789 },
  };

  it('opens guests’ ssh and agent ports only to VM_INGRESS_FROM, before the drop', () => {
    const rules = tapRuleset({ ...base, ingressFrom: ['192.0.2.10', '198.51.100.0/28'] });
    const allow =
      'oifname "br0" ip saddr { 192.0.2.10, 198.51.100.0/28 } tcp dport { 22, 8789 } ct state new accept';
    expect(rules).toContain(allow);
    expect(rules.indexOf(allow)).toBeLessThan(rules.indexOf('\n    oifname "br0" drop'));
    expect(tapRuleset(base)).not.toContain('tcp dport { 22, 8789 }');
  });
});
