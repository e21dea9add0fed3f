import { constants } from 'node:fs';
import { access, mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run } from './exec.js';

async function exists(p: string): Promise<boolean> {
  try {
    await access(p, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates the user's data disk on first use: a sparse raw file formatted ext4 (mkfs.ext4
 * with lazy init, no mount), labelled moltage-data. Existing disks are left untouched.
 */
export async function ensureDataDisk(path: string, sizeMib: number): Promise<boolean> {
  if (await exists(path)) return false;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.new`;
  await rm(tmp, { force: true });
  const fh = await open(tmp, 'w', 0o600);
  await fh.truncate(sizeMib * 1024 * 1024);
  await fh.close();
  try {
    await run(
      'mkfs.ext4',
      ['-q', '-F', '-L', 'moltage-data', '-E', 'lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0', tmp],
      { timeoutMs: 60_000 },
    );
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await rename(tmp, path);
  return true;
}

export async function writeConfigDisk(path: string, bytes: Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.new`;
  await writeFile(tmp, bytes, { mode: 0o600 });
  await rename(tmp, path);
}
