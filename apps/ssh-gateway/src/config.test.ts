import { ConfigError } from '@moltage/core';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseListenAddress } from './config.js';

describe('gateway config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c.LISTEN_ADDR).toEqual({ host: '0.0.0.0', port: 2222 });
    expect(c.METRICS_ADDR).toEqual({ host: '127.0.0.1', port: 9222 });
    expect(c.HOST_KEY_PATH).toBe('/etc/ssh-gateway/host_key');
    expect(c.VM_SSH_USER).toBe('user');
    expect(c.VM_SSH_PASS).toBeUndefined();
    expect(c.REDIS_URL).toBe('redis://localhost:6379');
  });

  it('reads IPv4, IPv6 and host name listen addresses, and METRICS_ADDR=off', () => {
    expect(parseListenAddress('[::]:2222')).toEqual({ host: '::', port: 2222 });
    expect(parseListenAddress('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(loadConfig({ METRICS_ADDR: 'off' }).METRICS_ADDR).toBeNull();
  });

  it('names every malformed variable', () => {
    let err: unknown;
    try {
      loadConfig({
        LISTEN_ADDR: '2222',
        ORCHESTRATOR_URL: 'ftp://x',
        VM_SSH_USER: 'Bad User',
        IDLE_TIMEOUT_S: '-1',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toContain('Invalid environment variable LISTEN_ADDR');
    expect(problems).toContain('Invalid environment variable ORCHESTRATOR_URL');
    expect(problems).toContain('Invalid environment variable VM_SSH_USER');
    expect(problems).toContain('Invalid environment variable IDLE_TIMEOUT_S');
  });

  it('tunes the heap growing factor by default, can leave it alone, and refuses nonsense', () => {
    expect(loadConfig({}).GC_HEAP_GROWING_PERCENT).toBe(300);
    expect(loadConfig({ GC_HEAP_GROWING_PERCENT: '0' }).GC_HEAP_GROWING_PERCENT).toBe(0);
    for (const bad of ['-1', '1001', '2.5', 'lots']) {
      expect(() => loadConfig({ GC_HEAP_GROWING_PERCENT: bad })).toThrow(/GC_HEAP_GROWING_PERCENT/);
    }
  });

  it('refuses ports out of range', () => {
    expect(parseListenAddress('0.0.0.0:65536')).toBeNull();
    expect(() => loadConfig({ METRICS_ADDR: 'x:99999' })).toThrow(/METRICS_ADDR/);
  });
});
