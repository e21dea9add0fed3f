import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

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
