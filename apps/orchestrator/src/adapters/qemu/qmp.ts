import { createConnection } from 'node:net';

export class QmpError extends Error {
  constructor(
    message: string,
    readonly qmpClass?: string,
  ) {
    super(message);
    this.name = 'QmpError';
  }
}

/**
 * Runs one QMP command on a QEMU monitor socket: greeting, `qmp_capabilities`, the command,
 * its `return`. One short connection per command (QEMU serves one monitor client at a time).
 */
export function qmpCommand(
  socketPath: string,
  execute: string,
  args?: Record<string, unknown>,
  timeoutMs = 3000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path: socketPath });
    let buf = '';
    let phase: 'greeting' | 'caps' | 'command' = 'greeting';
    let settled = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(
      () => finish(new QmpError(`QMP ${execute} on ${socketPath} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on('error', (e) => finish(new QmpError(`QMP socket ${socketPath}: ${e.message}`)));
    sock.on('close', () => {
      // `quit` closes the connection, sometimes before its reply arrives.
      if (phase === 'command' && execute === 'quit') finish(null, {});
      else finish(new QmpError(`QMP socket ${socketPath} closed during ${execute}`));
    });
    sock.on('data', (d) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        if (!line) continue;
        let msg: { QMP?: unknown; return?: unknown; error?: { class: string; desc: string }; event?: string };
        try {
          msg = JSON.parse(line);
        } catch {
          finish(new QmpError(`QMP socket ${socketPath} sent invalid JSON`));
          return;
        }
        if (msg.event) continue;
        if (phase === 'greeting' && msg.QMP) {
          phase = 'caps';
          sock.write(`${JSON.stringify({ execute: 'qmp_capabilities' })}\n`);
        } else if (msg.error) {
          finish(new QmpError(`QMP ${execute}: ${msg.error.desc}`, msg.error.class));
        } else if (phase === 'caps' && 'return' in msg) {
          phase = 'command';
          sock.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
        } else if (phase === 'command' && 'return' in msg) {
          finish(null, msg.return);
        }
      }
    });
  });
}
