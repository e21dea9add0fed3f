import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const MOLTAGE = fileURLToPath(new URL('../../../../bin/moltage.js', import.meta.url));
/** The tests' image cache (the orchestrator's tests build the same images there). */
const IMAGE_DIR = process.env.MOLTAGE_TEST_IMAGE_DIR ?? '/var/tmp/moltage-test-images';

describe('moltage image build', () => {
  it('--tiny-agent builds (or reuses) the test image with the shell agent', async () => {
    const { stdout } = await run(
      process.execPath,
      [MOLTAGE, 'image', 'build', '--tiny-agent', '--image-dir', IMAGE_DIR],
      {
        timeout: 600_000,
      },
    );
    const dir = join(IMAGE_DIR, 'tiny-agent');
    expect(stdout).toMatch(new RegExp(`^(cached|built): ${dir}$`, 'm'));
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest['name']).toBe('tiny-agent');
    expect(manifest['agentPort']).toBe(8789);
    expect(existsSync(join(dir, String(manifest['rootfs'])))).toBe(true);
  }, 660_000);

  it('refuses --tiny with --tiny-agent in one line, building nothing', async () => {
    const err = await run(process.execPath, [
      MOLTAGE,
      'image',
      'build',
      '--tiny',
      '--tiny-agent',
      '--image-dir',
      '/nonexistent/x',
    ])
      .then(() => null)
      .catch((e: { code?: number; stderr?: string }) => e);
    expect(err?.code).toBe(2);
    expect(err?.stderr?.trim()).toBe('moltage image build: choose one of --tiny and --tiny-agent');
    expect(existsSync('/nonexistent/x')).toBe(false);
  });
});
