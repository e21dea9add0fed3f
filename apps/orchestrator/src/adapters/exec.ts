import { spawn } from 'node:child_process';

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs a command without a shell and collects its output. Rejects with the command line and
 * the tail of stderr when it fails, is not installed or exceeds `timeoutMs`.
 */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; input?: Buffer | string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.length > 64_000) err = err.slice(-32_000);
    });
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (code === 0) {
        resolve({ stdout: Buffer.concat(out), stderr: err });
        return;
      }
      const why = timedOut ? `timed out after ${opts.timeoutMs} ms` : `exited with ${code ?? signal}`;
      const tail = err.trim().split('\n').slice(-5).join(' | ');
      reject(new Error(`${cmd} ${args.join(' ')} ${why}${tail ? `: ${tail}` : ''}`));
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input);
  });
}

/** Whether an executable is on PATH (or an absolute path that exists and runs). */
export async function commandExists(cmd: string): Promise<boolean> {
  try {
    await run('sh', ['-c', 'command -v "$1"', 'sh', cmd], { timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}
