import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageMissingError } from '../errors.js';
import { readManifest } from '../images/manifest.js';

export interface ResolvedImage {
  name: string;
  kernelPath: string;
  initrdPath?: string;
  rootfsPath: string;
  kernelArgs: string;
  sshPort: number;
  sshUser: string;
  agentPort: number | null;
  /** Guest memory the image asks for (manifest `memMib`), when it says. */
  memMib?: number;
  /** TCG translation cache the image asks for (manifest `tcgTbMib`), when it says. */
  tcgTbMib?: number;
}

async function readable(p: string): Promise<boolean> {
  try {
    await access(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the image to boot: `<imageDir>/<image>/manifest.json`, with KERNEL_PATH /
 * BASE_ROOTFS_PATH / INITRD_PATH overriding its files when set. Read at each VM start, so an
 * image built after the orchestrator started is picked up without a restart.
 */
export function imageResolver(opts: {
  imageDir: string;
  image: string;
  kernelPath?: string;
  baseRootfsPath?: string;
  initrdPath?: string;
}): () => Promise<ResolvedImage> {
  return async () => {
    const dir = join(opts.imageDir, opts.image);
    const manifest = await readManifest(dir).catch(() => undefined);
    const kernelPath = opts.kernelPath ?? (manifest ? join(dir, manifest.kernel) : undefined);
    const rootfsPath = opts.baseRootfsPath ?? (manifest ? join(dir, manifest.rootfs) : undefined);
    const initrdPath = opts.initrdPath ?? (manifest ? join(dir, manifest.initrd) : undefined);
    if (!kernelPath || !rootfsPath) {
      const hint =
        opts.image === 'tiny'
          ? 'moltage image build --tiny'
          : opts.image === 'tiny-agent'
            ? 'moltage image build --tiny-agent'
            : 'moltage image build';
      throw new ImageMissingError(`no ${opts.image} image in ${dir} (build it with: ${hint})`);
    }
    for (const p of [kernelPath, rootfsPath, ...(initrdPath ? [initrdPath] : [])]) {
      if (!(await readable(p))) throw new ImageMissingError(`image file ${p} is missing or unreadable`);
    }
    return {
      name: opts.image,
      kernelPath,
      initrdPath,
      rootfsPath,
      kernelArgs: manifest?.kernelArgs ?? 'console=ttyS0 panic=-1',
      sshPort: manifest?.sshPort ?? 22,
      sshUser: manifest?.sshUser ?? 'user',
      agentPort: manifest ? manifest.agentPort : 8789,
      memMib: manifest?.memMib,
      tcgTbMib: manifest?.tcgTbMib,
    };
  };
}
