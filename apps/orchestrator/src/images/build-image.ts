import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import {
  access,
  chmod,
  copyFile,
  cp,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { run } from '../adapters/exec.js';
import { ImageBuildError } from '../errors.js';
import {
  candidatePackages,
  type DebPackage,
  downloadPackages,
  extractDeb,
  resolveMetaPackage,
} from './apt.js';
import { extractVmlinux } from './extract-vmlinux.js';
import { resolveModules } from './kernel-modules.js';
import { type ImageManifest, readManifest } from './manifest.js';

/** Bumped whenever the build procedure changes in a way that changes the output. */
const BUILDER_VERSION = 2;

/** The repository's `images/` folder (guest init, tiny image files); same depth from src/ and dist/. */
export const IMAGES_SOURCE_DIR = fileURLToPath(new URL('../../../../images/', import.meta.url));

export const KERNEL_META = 'linux-image-cloud-amd64';
const TINY_PACKAGES = [
  'busybox-static',
  'dropbear-bin',
  'libc6',
  'libgcc-s1',
  'libcrypt1',
  'libtomcrypt1',
  'libtommath1',
  'libgmp10',
  'zlib1g',
];
/** virtio (PCI for QEMU, MMIO for Firecracker), overlay root, ACPI power button. */
export const INITRD_MODULES = [
  'virtio_pci',
  'virtio_mmio',
  'virtio_blk',
  'virtio_net',
  'overlay',
  'button',
  'evdev',
];
/** Trimmed from the base rootfs: nothing in the tiny image reads them. */
const TRIM_PATHS = [
  'usr/share/doc',
  'usr/share/man',
  'usr/share/info',
  'usr/share/lintian',
  'usr/share/locale',
];

export const TINY_KERNEL_ARGS = 'console=ttyS0 panic=-1 quiet';

/** The images this file builds from Debian packages alone (`agent` is agent-image.ts). */
export type TinyKind = 'tiny' | 'tiny-agent';

/**
 * The guest files of each kind, copied over the unpacked packages in this order: `tiny-agent` is
 * the tiny image plus a test agent (busybox shell scripts that speak the webhook contract).
 */
const ROOTFS_LAYERS: Record<TinyKind, string[]> = {
  tiny: ['tiny/rootfs'],
  'tiny-agent': ['tiny/rootfs', 'tiny/test-agent/rootfs'],
};

/** The port the test agent of `tiny-agent` serves (the contract's default agent port). */
export const TEST_AGENT_PORT = 8789;

export interface ImageProgress {
  step: 'resolve' | 'cached' | 'download' | 'extract' | 'rootfs' | 'initrd' | 'done';
  message: string;
}

export interface BuildImageOptions {
  /**
   * `tiny`: busybox + dropbear test image; `tiny-agent`: the same plus a minimal test agent on
   * port 8789 (for whole-stack tests); `agent`: Debian + OpenClaw + the Moltage plugin (agent-image.ts).
   */
  kind: TinyKind | 'agent';
  /** `VM_IMAGE_DIR`; the image lands in `<imageDir>/<kind>/`. */
  imageDir: string;
  onProgress?: (p: ImageProgress) => void;
  /** Rebuild even when the cached image's input hash matches. */
  force?: boolean;
}

export interface BuiltImage {
  dir: string;
  kernelPath: string;
  initrdPath: string;
  rootfsPath: string;
  manifest: ImageManifest;
  /** True when an existing build with the same input hash was reused. */
  cached: boolean;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await access(p, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/** Hash of everything that decides the image's bytes: packages, guest files, builder version. */
async function inputHash(kind: TinyKind, packages: DebPackage[]): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify({ BUILDER_VERSION, kind, INITRD_MODULES, TRIM_PATHS, TINY_KERNEL_ARGS, packages }));
  const layerFiles: string[] = [];
  for (const layer of ROOTFS_LAYERS[kind])
    layerFiles.push(...(await listFiles(join(IMAGES_SOURCE_DIR, layer))));
  for (const file of [join(IMAGES_SOURCE_DIR, 'guest/init'), ...layerFiles]) {
    const st = await stat(file);
    h.update(`\0${relative(IMAGES_SOURCE_DIR, file)}\0${st.mode & 0o111 ? 'x' : '-'}\0`);
    h.update(await readFile(file));
  }
  return h.digest('hex');
}

/** A directory lock (mkdir is atomic) so two builds into one image dir never interleave. */
export async function withBuildLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(await readFile(join(lockDir, 'pid'), 'utf8').catch(() => '0'));
      let alive = false;
      if (pid > 0) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (!alive && pid > 0) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new ImageBuildError(`image build lock ${lockDir} held too long`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

/** Symlinks every busybox applet (`busybox --list-full`) that is not already a file. */
async function installBusybox(root: string, busybox: string): Promise<void> {
  const list = (await run(busybox, ['--list-full'])).stdout.toString().split('\n').filter(Boolean);
  for (const applet of list) {
    const target = join(root, applet);
    if (await exists(target)) continue;
    await mkdir(dirname(target), { recursive: true });
    await symlink(relative(dirname(target), join(root, 'bin/busybox')), target);
  }
}

export async function dirSizeBytes(dir: string): Promise<number> {
  const out = (await run('du', ['-sb', dir])).stdout.toString();
  return Number(out.split(/\s/)[0]);
}

async function gzipFile(src: string, dest: string): Promise<void> {
  await pipeline(createReadStream(src), createGzip({ level: 9 }), createWriteStream(dest));
}

/**
 * Writes the initrd every image uses (gzip'd newc cpio): static busybox, the generic guest init
 * (`images/guest/init`) as `/init`, and the virtio/overlay modules with their load order.
 * Returns the module names in load order.
 */
export async function writeInitrd(opts: {
  /** Empty staging directory. */
  dir: string;
  /** A static busybox binary. */
  busybox: string;
  /** The kernel's `lib/modules/<version>`. */
  modulesDir: string;
  out: string;
}): Promise<string[]> {
  const initrd = opts.dir;
  await mkdir(join(initrd, 'bin'), { recursive: true });
  await copyFile(opts.busybox, join(initrd, 'bin/busybox'));
  await chmod(join(initrd, 'bin/busybox'), 0o755);
  await installBusybox(initrd, join(initrd, 'bin/busybox'));
  for (const d of ['dev', 'proc', 'sys', 'run', 'mnt', 'newroot', 'lib/moltage-modules']) {
    await mkdir(join(initrd, d), { recursive: true });
  }
  await copyFile(join(IMAGES_SOURCE_DIR, 'guest/init'), join(initrd, 'init'));
  await chmod(join(initrd, 'init'), 0o755);
  const modules = await resolveModules(opts.modulesDir, INITRD_MODULES);
  for (const m of modules) await copyFile(m.path, join(initrd, 'lib/moltage-modules', `${m.name}.ko`));
  await writeFile(
    join(initrd, 'lib/moltage-modules/load-order'),
    `${modules.map((m) => m.name).join('\n')}\n`,
  );
  const entries = (await run('find', ['.', '-mindepth', '1'], { cwd: initrd })).stdout;
  const cpioPath = `${initrd}.cpio`;
  const cpioOut = await run('cpio', ['--quiet', '-o', '-H', 'newc', '-R', '0:0'], {
    cwd: initrd,
    input: entries,
  });
  await writeFile(cpioPath, cpioOut.stdout);
  await gzipFile(cpioPath, opts.out);
  await rm(cpioPath, { force: true });
  return modules.map((m) => m.name);
}

/**
 * Builds (or reuses) a guest image in `<imageDir>/<kind>/`: `vmlinuz`, `initrd.img`,
 * `rootfs.ext4` and `manifest.json`. Only Debian packages are used (apt-get download +
 * dpkg-deb -x); nothing is mounted. See images/README.md for the guest contract.
 */
export async function buildImage(opts: BuildImageOptions): Promise<BuiltImage> {
  if (opts.kind === 'agent') {
    const { buildAgentImage } = await import('./agent-image.js');
    return buildAgentImage(opts);
  }
  const progress = opts.onProgress ?? (() => {});
  if (!Object.hasOwn(ROOTFS_LAYERS, opts.kind)) {
    throw new ImageBuildError(`unknown image kind ${String(opts.kind)}`);
  }
  const kind: TinyKind = opts.kind;
  await mkdir(opts.imageDir, { recursive: true });
  const finalDir = join(opts.imageDir, kind);

  return withBuildLock(join(opts.imageDir, `.${kind}.lock`), async () => {
    progress({ step: 'resolve', message: `resolving Debian packages for the ${kind} image` });
    let packages: DebPackage[];
    try {
      const kernelPkg = await resolveMetaPackage(KERNEL_META, 'linux-image-');
      packages = await candidatePackages([kernelPkg, ...TINY_PACKAGES]);
    } catch (err) {
      throw new ImageBuildError((err as Error).message, err);
    }
    const hash = await inputHash(kind, packages);

    if (!opts.force) {
      const current = await readManifest(finalDir).catch(() => undefined);
      if (current?.hash === hash) {
        const image = describe(finalDir, current, true);
        if (
          (await exists(image.kernelPath)) &&
          (await exists(image.initrdPath)) &&
          (await exists(image.rootfsPath))
        ) {
          progress({ step: 'cached', message: `${kind} image is up to date (${hash.slice(0, 12)})` });
          return image;
        }
      }
    }

    const work = join(opts.imageDir, `.${kind}.build-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      return await buildInto(work, finalDir, kind, packages, hash, progress);
    } catch (err) {
      throw err instanceof ImageBuildError
        ? err
        : new ImageBuildError(`building the ${kind} image failed: ${(err as Error).message}`, err);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
}

export function describe(dir: string, manifest: ImageManifest, cached: boolean): BuiltImage {
  return {
    dir,
    kernelPath: join(dir, manifest.kernel),
    initrdPath: join(dir, manifest.initrd),
    rootfsPath: join(dir, manifest.rootfs),
    manifest,
    cached,
  };
}

async function buildInto(
  work: string,
  finalDir: string,
  kind: TinyKind,
  packages: DebPackage[],
  hash: string,
  progress: (p: ImageProgress) => void,
): Promise<BuiltImage> {
  const started = Date.now();
  const debs = join(work, 'debs');
  const kernelRoot = join(work, 'kernel');
  const rootfs = join(work, 'rootfs');
  const initrd = join(work, 'initrd');
  const out = join(work, 'out');
  for (const d of [debs, kernelRoot, rootfs, initrd, out]) await mkdir(d, { recursive: true });

  progress({ step: 'download', message: `downloading ${packages.length} Debian packages` });
  const files = await downloadPackages(packages, debs);

  const [kernelPkg, ...rootPkgs] = packages;
  progress({ step: 'extract', message: `unpacking ${kernelPkg!.name} ${kernelPkg!.version}` });
  await extractDeb(files.get(kernelPkg!.name)!, kernelRoot);
  for (const p of rootPkgs) {
    progress({ step: 'extract', message: `unpacking ${p.name} ${p.version}` });
    await extractDeb(files.get(p.name)!, rootfs);
  }

  const bootFiles = await readdir(join(kernelRoot, 'boot'));
  const vmlinuz = bootFiles.find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new ImageBuildError(`${kernelPkg!.name} has no /boot/vmlinuz-*`);
  const kernelVersion = vmlinuz.slice('vmlinuz-'.length);

  // Base rootfs.
  progress({ step: 'rootfs', message: 'assembling the base rootfs' });
  for (const p of TRIM_PATHS) await rm(join(rootfs, p), { recursive: true, force: true });
  await rm(join(rootfs, 'usr/lib/x86_64-linux-gnu/gconv'), { recursive: true, force: true });
  await installBusybox(rootfs, join(rootfs, 'bin/busybox'));
  for (const d of [
    'proc',
    'sys',
    'dev',
    'run',
    'data',
    'home',
    'root',
    'tmp',
    'var/tmp',
    'var/log',
    'etc/dropbear',
  ]) {
    await mkdir(join(rootfs, d), { recursive: true });
  }
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await chmod(join(rootfs, 'var/tmp'), 0o1777);
  await chmod(join(rootfs, 'root'), 0o700);
  for (const layer of ROOTFS_LAYERS[kind]) {
    await cp(join(IMAGES_SOURCE_DIR, layer), rootfs, { recursive: true, force: true });
  }
  await chmod(join(rootfs, 'etc/shadow'), 0o600);
  const usedBytes = await dirSizeBytes(rootfs);
  const sizeMib = Math.ceil((usedBytes * 1.3) / 1048576) + 16;
  const rootfsImg = join(out, 'rootfs.ext4');
  progress({ step: 'rootfs', message: `writing rootfs.ext4 (${sizeMib} MiB, mkfs.ext4 -d)` });
  await run(
    'mkfs.ext4',
    [
      '-q',
      '-F',
      '-L',
      'moltage-base',
      '-O',
      '^has_journal',
      '-m',
      '0',
      '-E',
      'root_owner=0:0',
      '-d',
      rootfs,
      rootfsImg,
      `${sizeMib}M`,
    ],
    { timeoutMs: 300_000 },
  );

  // Initrd: busybox, the generic guest init, virtio/overlay modules.
  progress({ step: 'initrd', message: 'building initrd.img' });
  const moduleNames = await writeInitrd({
    dir: initrd,
    busybox: join(rootfs, 'bin/busybox'),
    modulesDir: join(kernelRoot, 'lib/modules', kernelVersion),
    out: join(out, 'initrd.img'),
  });
  await copyFile(join(kernelRoot, 'boot', vmlinuz), join(out, 'vmlinuz'));
  progress({ step: 'initrd', message: 'extracting the ELF vmlinux (for Firecracker)' });
  await extractVmlinux(join(out, 'vmlinuz'), join(out, 'vmlinux'));

  const manifest: ImageManifest = {
    name: kind,
    hash,
    builtAt: new Date().toISOString(),
    kernel: 'vmlinuz',
    vmlinux: 'vmlinux',
    initrd: 'initrd.img',
    rootfs: 'rootfs.ext4',
    kernelVersion,
    kernelArgs: TINY_KERNEL_ARGS,
    sshUser: 'user',
    sshPort: 22,
    agentPort: kind === 'tiny-agent' ? TEST_AGENT_PORT : null,
    packages,
    modules: moduleNames,
    sizes: {
      kernelBytes: (await stat(join(out, 'vmlinuz'))).size,
      vmlinuxBytes: (await stat(join(out, 'vmlinux'))).size,
      initrdBytes: (await stat(join(out, 'initrd.img'))).size,
      rootfsBytes: (await stat(rootfsImg)).size,
    },
    buildMs: Date.now() - started,
  };
  await writeFile(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);

  // Swap in atomically; VMs still running on the old files keep their open inodes.
  const old = `${finalDir}.old-${randomBytes(4).toString('hex')}`;
  if (await exists(finalDir)) await rename(finalDir, old);
  await rename(out, finalDir);
  await rm(old, { recursive: true, force: true });
  progress({
    step: 'done',
    message: `${kind} image ready in ${finalDir} (${Math.round((Date.now() - started) / 100) / 10} s)`,
  });
  return describe(finalDir, manifest, false);
}
