import { readdir, readFile } from 'node:fs/promises';

/** Whether a process with this pid exists (it may belong to anyone). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The NUL-separated command line of a live process, or undefined. Zombies count as dead. */
export async function cmdlineOf(pid: number): Promise<string[] | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return undefined;
    const raw = await readFile(`/proc/${pid}/cmdline`);
    if (raw.length === 0) return undefined;
    return raw.toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/** Pids of live processes whose command line contains `needle`. */
export async function findProcesses(needle: string): Promise<Array<{ pid: number; args: string[] }>> {
  const out: Array<{ pid: number; args: string[] }> = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const args = await cmdlineOf(pid);
    if (args?.some((a) => a.includes(needle))) out.push({ pid, args });
  }
  return out;
}

/** Waits until `pid` is gone (or a zombie); false when it still runs after `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await cmdlineOf(pid)) === undefined) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resident memory (VmRSS) of a live process in MiB, or null when it is gone or unreadable. */
export async function rssMib(pid: number): Promise<number | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : null;
  } catch {
    return null;
  }
}
