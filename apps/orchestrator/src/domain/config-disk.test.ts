import { describe, expect, it } from 'vitest';
import { decodeConfigDisk, encodeConfigDisk, rewriteLoopbackUrl } from './config-disk.js';

describe('config disk', () => {
  it('round-trips key=value lines, skips unset values and pads to 4 KiB blocks', () => {
    const disk = encodeConfigDisk({
      hostname: 'moltage-1',
      ip: '10.0.1.2/24',
      agent_port: 8789,
      dns: undefined,
    });
    expect(disk.length).toBe(4096);
    expect(disk.toString('utf8', 0, 18)).toBe('MOLTAGE_CONFIG_V1\n');
    expect(decodeConfigDisk(disk)).toEqual({ hostname: 'moltage-1', ip: '10.0.1.2/24', agent_port: '8789' });
  });

  it('keeps values with spaces and = intact', () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPabc== gateway@host';
    const disk = encodeConfigDisk({ ssh_authorized_key: key, callback_url: 'http://h/cb?a=b' });
    expect(decodeConfigDisk(disk)).toEqual({ ssh_authorized_key: key, callback_url: 'http://h/cb?a=b' });
  });

  it('refuses values that would inject lines and bad keys', () => {
    expect(() => encodeConfigDisk({ hostname: 'a\nip=1.2.3.4/8' })).toThrow(/single line/);
    expect(() => encodeConfigDisk({ 'Bad-Key': 'x' })).toThrow(/key/);
    expect(() => encodeConfigDisk({ big: 'x'.repeat(70_000) })).toThrow(/at most/);
  });

  it('rewrites loopback URLs to the address the guest sees the host under', () => {
    expect(rewriteLoopbackUrl('http://127.0.0.1:4000/v1', '10.0.1.1')).toBe('http://10.0.1.1:4000/v1');
    expect(rewriteLoopbackUrl('http://localhost:3000/callback', '10.0.1.1')).toBe(
      'http://10.0.1.1:3000/callback',
    );
    expect(rewriteLoopbackUrl('https://api.example.com/v1', '10.0.1.1')).toBe('https://api.example.com/v1');
    expect(rewriteLoopbackUrl(undefined, '10.0.1.1')).toBeUndefined();
  });
});
