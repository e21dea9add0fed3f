import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/** `manifest.json` of a built image; the orchestrator reads it to boot the image. */
export const imageManifestSchema = z.object({
  name: z.string(),
  hash: z.string(),
  builtAt: z.string(),
  /** bzImage, booted by QEMU. */
  kernel: z.string(),
  /** Uncompressed ELF kernel, booted by Firecracker. */
  vmlinux: z.string().optional(),
  initrd: z.string(),
  rootfs: z.string(),
  kernelVersion: z.string(),
  /** Command line the image needs (console, …); the driver may add its own. */
  kernelArgs: z.string(),
  sshUser: z.string(),
  sshPort: z.number().int(),
  /** Guest port of the agent webhook, or null when the image has no agent (tiny). */
  agentPort: z.number().int().nullable(),
  /** Guest memory the image needs by default (used when DEFAULT_MEM_MIB is not set). */
  memMib: z.number().int().positive().optional(),
  /** QEMU TCG translation cache (MiB) the image needs (used when QEMU_TCG_TB_MIB is not set). */
  tcgTbMib: z.number().int().positive().optional(),
  packages: z.array(z.object({ name: z.string(), version: z.string(), sha256: z.string() })),
  modules: z.array(z.string()),
  sizes: z.object({
    kernelBytes: z.number(),
    vmlinuxBytes: z.number().optional(),
    initrdBytes: z.number(),
    rootfsBytes: z.number(),
  }),
  buildMs: z.number(),
});

export type ImageManifest = z.infer<typeof imageManifestSchema>;

export async function readManifest(dir: string): Promise<ImageManifest> {
  const text = await readFile(join(dir, 'manifest.json'), 'utf8');
  return imageManifestSchema.parse(JSON.parse(text));
}
