import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type PluginLogger, silentLogger } from './logger.js';
import { CallbackRouteStore } from './routes-store.js';

describe('CallbackRouteStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'moltage-routes-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('remembers routes across restarts in a file only its owner can read', async () => {
    const file = join(dir, 'plugins', 'webhook-server', 'callback-routes.json');
    const first = new CallbackRouteStore(file, silentLogger);
    await first.set('o1', { url: 'http://bridge/callback', token: 't1' });
    await first.set('o2', { url: 'http://bridge/callback' });

    const second = new CallbackRouteStore(file, silentLogger);
    expect(await second.get('o1')).toEqual({ url: 'http://bridge/callback', token: 't1' });
    expect(await second.get('o2')).toEqual({ url: 'http://bridge/callback' });
    expect(await second.get('o3')).toBeUndefined();
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('keeps the newest entries when full', async () => {
    const store = new CallbackRouteStore(join(dir, 'r.json'), silentLogger, 2);
    await store.set('a', { url: 'http://x/a' });
    await store.set('b', { url: 'http://x/b' });
    await store.set('a', { url: 'http://x/a2' });
    await store.set('c', { url: 'http://x/c' });
    expect(await store.get('b')).toBeUndefined();
    expect(await store.get('a')).toEqual({ url: 'http://x/a2' });
    const onDisk = JSON.parse(await readFile(join(dir, 'r.json'), 'utf8'));
    expect(Object.keys(onDisk.routes).sort()).toEqual(['a', 'c']);
  });

  it('starts empty, with a warning, from a corrupt file', async () => {
    const file = join(dir, 'r.json');
    await writeFile(file, '{not json');
    const warnings: string[] = [];
    const logger: PluginLogger = { ...silentLogger, warn: (m) => warnings.push(m) };
    const store = new CallbackRouteStore(file, logger);
    expect(await store.get('o1')).toBeUndefined();
    expect(warnings[0]).toContain('ignoring unreadable callback routes file');
    await store.set('o1', { url: 'http://x/y' });
    expect(await new CallbackRouteStore(file, silentLogger).get('o1')).toEqual({ url: 'http://x/y' });
  });
});
