import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';

/** Compressed-payload magics inside a bzImage and the tool that decompresses each. */
const FORMATS: Array<{ magic: Buffer; cmd: string }> = [
  { magic: Buffer.from([0x02, 0x21, 0x4c, 0x18]), cmd: 'lz4' },
  { magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), cmd: 'zstd' },
  { magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), cmd: 'xz' },
  { magic: Buffer.from([0x1f, 0x8b, 0x08]), cmd: 'gzip' },
];
const ELF = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** Decompresses `input` with `cmd -dc`; trailing bzImage bytes make the tool exit non-zero. */
function decompress(cmd: string, input: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const child = spawn(cmd, ['-dc'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.on('error', () => resolve(Buffer.alloc(0)));
    child.on('close', () => resolve(Buffer.concat(out)));
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/**
 * Extracts the uncompressed ELF `vmlinux` from a bzImage (what the kernel's
 * scripts/extract-vmlinux does), for Firecracker, which boots ELF kernels.
 */
export async function extractVmlinux(bzImagePath: string, outPath: string): Promise<void> {
  const image = await readFile(bzImagePath);
  const tried: string[] = [];
  for (const f of FORMATS) {
    let at = image.indexOf(f.magic);
    while (at >= 0) {
      const out = await decompress(f.cmd, image.subarray(at));
      if (out.length > 1024 * 1024 && out.subarray(0, 4).equals(ELF)) {
        await writeFile(outPath, out);
        return;
      }
      tried.push(`${f.cmd}@${at}`);
      at = image.indexOf(f.magic, at + 1);
    }
  }
  throw new Error(
    `no ELF kernel found inside ${bzImagePath} (tried ${tried.join(', ') || 'no known compression'}; is lz4/zstd/xz installed?)`,
  );
}
