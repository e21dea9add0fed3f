import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';

/** One process `moltage up` runs and watches. */
export interface ServiceSpec {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Ready when this answers: an HTTP URL that returns < 500, or a TCP port on 127.0.0.1. */
  ready: { http: string } | { tcp: number };
  readyTimeoutMs?: number;
}

interface Running {
  spec: ServiceSpec;
  proc: ChildProcess;
  log: WriteStream;
  exited: Promise<number | null>;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.setTimeout(500);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status < 500;
  } catch {
    return false;
  }
}

/**
 * Starts services in order, each only after the previous one is ready; stops them in reverse
 * order. A service that dies while the stack runs stops the whole stack with its log's path,
 * so a half-working demo never passes for a working one.
 */
export class Supervisor {
  private readonly running: Running[] = [];
  private stopping = false;
  onUnexpectedExit: (name: string, code: number | null, logPath: string) => void = () => {};

  constructor(private readonly logDir: string) {
    mkdirSync(logDir, { recursive: true });
  }

  logPath(name: string): string {
    return join(this.logDir, `${name}.log`);
  }

  async start(spec: ServiceSpec): Promise<void> {
    const log = createWriteStream(this.logPath(spec.name), { flags: 'a' });
    log.write(`\n--- ${new Date().toISOString()} starting ${spec.name}\n`);
    const proc = spawn(spec.command, spec.args, { env: spec.env, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.pipe(log, { end: false });
    proc.stderr?.pipe(log, { end: false });
    const exited = new Promise<number | null>((resolve) => {
      proc.once('error', () => resolve(-1));
      proc.once('exit', (code) => resolve(code));
    });
    const entry: Running = { spec, proc, log, exited };
    this.running.push(entry);
    void exited.then((code) => {
      if (!this.stopping) this.onUnexpectedExit(spec.name, code, this.logPath(spec.name));
    });

    const deadline = Date.now() + (spec.readyTimeoutMs ?? 30_000);
    let dead = false;
    void exited.then(() => {
      dead = true;
    });
    for (;;) {
      if (dead) throw new Error(`${spec.name} exited during start-up; see ${this.logPath(spec.name)}`);
      const ok = 'http' in spec.ready ? await httpOk(spec.ready.http) : await tcpOpen(spec.ready.tcp);
      if (ok) return;
      if (Date.now() > deadline) {
        throw new Error(`${spec.name} did not become ready in time; see ${this.logPath(spec.name)}`);
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  /** Stops every service in reverse start order: SIGTERM, then SIGKILL after `graceMs`. */
  async stopAll(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    for (const entry of [...this.running].reverse()) {
      const { proc, exited, log } = entry;
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      await new Promise<void>((r) => log.end(() => r()));
    }
    this.running.length = 0;
  }
}
