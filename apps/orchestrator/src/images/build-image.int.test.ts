import { open } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { TEST_IMAGE_DIR } from '../test/helpers.js';
import { buildImage, type ImageProgress } from './build-image.js';

async function head(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

describe('tiny image build', () => {
  it('builds kernel, initrd and an ext4 base rootfs from Debian packages, then reuses the build', async () => {
    const first = await buildImage({ kind: 'tiny', imageDir: TEST_IMAGE_DIR });
    expect(first.manifest).toMatchObject({ name: 'tiny', sshUser: 'user', sshPort: 22, agentPort: null });
    expect(first.manifest.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(first.manifest.packages.map((p) => p.name)).toEqual(
      expect.arrayContaining([
        'busybox-static',
        'dropbear-bin',
        expect.stringMatching(/^linux-image-.*-cloud-amd64$/),
      ]),
    );
    expect((await head(first.rootfsPath, 1080, 2)).readUInt16LE(0)).toBe(0xef53); // ext4 superblock magic
    expect([...(await head(first.initrdPath, 0, 2))]).toEqual([0x1f, 0x8b]); // gzip
    expect((await head(first.kernelPath, 0x202, 4)).toString('latin1')).toBe('HdrS'); // bzImage header
    expect((await head(`${first.dir}/vmlinux`, 0, 4)).toString('latin1')).toBe('\x7fELF');

    const steps: ImageProgress['step'][] = [];
    const again = await buildImage({
      kind: 'tiny',
      imageDir: TEST_IMAGE_DIR,
      onProgress: (p) => steps.push(p.step),
    });
    expect(again.cached).toBe(true);
    expect(again.manifest.hash).toBe(first.manifest.hash);
    expect(steps).toEqual(['resolve', 'cached']);
  }, 600_000);
});
