import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, deferredChild } from './logger.js';

describe('createLogger', () => {
  it('never writes secrets, wherever they sit in a logged object', async () => {
    const lines: string[] = [];
    const dest = new Writable({
      write(chunk, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const log = createLogger({ name: 't', destination: dest });
    log.info(
      {
        req: { headers: { authorization: 'Bearer s3cret-bearer' } },
        cfg: { appSecret: 's3cret-app', encodingAesKey: 's3cret-aes', token: 's3cret-token' },
        agent_token: 's3cret-agent',
        password: 's3cret-pass',
      },
      'hello',
    );
    log.flush();
    await new Promise((r) => setImmediate(r));
    const out = lines.join('');
    expect(out).toContain('hello');
    expect(out).not.toMatch(/s3cret/);
    expect(out).toContain('[redacted]');
  });
});

describe('deferredChild', () => {
  function sink() {
    const lines: Record<string, unknown>[] = [];
    const dest = new Writable({
      write(chunk, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
        cb();
      },
    });
    return { lines, dest };
  }
  const flushed = () => new Promise((r) => setImmediate(r));

  it('logs with the bindings, the parent level and redaction of an ordinary child', async () => {
    const { lines, dest } = sink();
    const log = createLogger({ name: 't', level: 'info', destination: dest });
    const child = deferredChild(log, { reqId: 'req-1' });
    child.debug('below the level');
    child.info({ token: 's3cret-token' }, 'pushed');
    child.child({ step: 2 }).warn('nested');
    await flushed();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ reqId: 'req-1', msg: 'pushed', token: '[redacted]' });
    expect(lines[1]).toMatchObject({ reqId: 'req-1', step: 2, msg: 'nested', level: 40 });
    expect(child.level).toBe('info');
    expect(child.isLevelEnabled('debug')).toBe(false);
    expect(child.bindings()).toMatchObject({ reqId: 'req-1' });
  });

  it('keeps its own level once set, apart from the parent', async () => {
    const { lines, dest } = sink();
    const log = createLogger({ name: 't', level: 'info', destination: dest });
    const child = deferredChild(log, { reqId: 'req-2' });
    child.level = 'debug';
    child.debug('now shown');
    log.debug('parent still at info');
    await flushed();
    expect(lines.map((l) => l['msg'])).toEqual(['now shown']);
  });
});
