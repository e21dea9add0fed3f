import { describe, expect, it } from 'vitest';
import { inSubnet, macForIp, parseCidr, poolAddresses, userModeDnsIp } from './ip-pool.js';

describe('subnet plan', () => {
  it('normalizes a CIDR and lists guest addresses without gateway and excluded ones', () => {
    const s = parseCidr('10.0.1.9/29');
    expect(s).toEqual({ cidr: '10.0.1.8/29', network: '10.0.1.8', prefixLen: 29, broadcast: '10.0.1.15' });
    expect(poolAddresses(s, ['10.0.1.9', userModeDnsIp(s)])).toEqual([
      '10.0.1.10',
      '10.0.1.11',
      '10.0.1.12',
      '10.0.1.13',
    ]);
    expect(poolAddresses(parseCidr('10.0.1.0/24'), ['10.0.1.1'])).toHaveLength(253);
  });

  it('rejects malformed subnets', () => {
    expect(() => parseCidr('10.0.1.0')).toThrow(/CIDR/);
    expect(() => parseCidr('10.0.1.0/31')).toThrow(/prefix/);
    expect(() => parseCidr('300.0.1.0/24')).toThrow(/IPv4/);
  });

  it('tells host addresses from network and broadcast', () => {
    const s = parseCidr('10.0.1.0/24');
    expect(inSubnet('10.0.1.1', s)).toBe(true);
    expect(inSubnet('10.0.1.0', s)).toBe(false);
    expect(inSubnet('10.0.1.255', s)).toBe(false);
    expect(inSubnet('10.0.2.1', s)).toBe(false);
  });

  it('derives a stable, locally administered, unicast MAC per address', () => {
    expect(macForIp('10.0.1.2')).toBe('02:4d:0a:00:01:02');
    expect(macForIp('10.0.1.3')).not.toBe(macForIp('10.0.1.2'));
  });
});
