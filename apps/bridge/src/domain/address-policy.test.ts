import { describe, expect, it } from 'vitest';
import { classifyAddress, displayUrl, hostOf, parseBindUrl } from './address-policy.js';

describe('classifyAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.1', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['224.0.0.1', 'multicast'],
    ['239.1.2.3', 'multicast'],
    ['ff02::1', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['100.64.0.1', 'shared'],
    ['255.255.255.255', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.10', 'reserved'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fd00:ec2::254', 'metadata'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:7f00:1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['2002:7f00:1::', 'loopback'],
    ['2001:db8::1', 'reserved'],
    ['not-an-ip', 'reserved'],
  ])('%s is %s', (ip, reason) => {
    expect(classifyAddress(ip)).toBe(reason);
  });

  it.each(['8.8.8.8', '1.1.1.1', '203.0.114.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])(
    '%s is public',
    (ip) => {
      expect(classifyAddress(ip)).toBeNull();
    },
  );
});

describe('parseBindUrl', () => {
  it('accepts http and https URLs', () => {
    const r = parseBindUrl('https://claw.example.com:8443/webhook');
    expect(r.ok && r.url.hostname).toBe('claw.example.com');
    expect(parseBindUrl('http://1.2.3.4/').ok).toBe(true);
  });

  it('refuses other schemes, credentials and garbage', () => {
    expect(parseBindUrl('ftp://claw.example.com/')).toEqual({ ok: false, problem: 'scheme' });
    expect(parseBindUrl('file:///etc/passwd')).toEqual({ ok: false, problem: 'scheme' });
    expect(parseBindUrl('gopher://x')).toEqual({ ok: false, problem: 'scheme' });
    expect(parseBindUrl('javascript:alert(1)')).toEqual({ ok: false, problem: 'scheme' });
    expect(parseBindUrl('https://user:pw@claw.example.com/')).toEqual({ ok: false, problem: 'invalid' });
    expect(parseBindUrl('claw.example.com')).toEqual({ ok: false, problem: 'invalid' });
    expect(parseBindUrl(`https://x.example/${'a'.repeat(3000)}`)).toEqual({ ok: false, problem: 'invalid' });
  });

  it('normalises tricky IPv4 spellings so the address check sees the real address', () => {
    const r = parseBindUrl('http://0x7f000001/');
    expect(r.ok && hostOf(r.url)).toBe('127.0.0.1');
    const r2 = parseBindUrl('http://[::1]:8080/');
    expect(r2.ok && hostOf(r2.url)).toBe('::1');
  });
});

describe('displayUrl', () => {
  it('never shows the query string', () => {
    expect(displayUrl('https://claw.example.com/webhook?key=secret')).toBe(
      'https://claw.example.com/webhook',
    );
    expect(displayUrl('https://claw.example.com/')).toBe('https://claw.example.com');
  });
});
