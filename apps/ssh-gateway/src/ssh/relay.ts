import type { Writable } from 'node:stream';
import type { Logger } from '@moltage/core';
import type { ClientChannel, ServerChannel } from 'ssh2';

const EMPTY = Buffer.alloc(0);

/** How a remote process ended (ssh2 `exit` event arguments). */
export type ExitInfo = { code: number } | { signal: string; coreDumped: boolean; message: string };

export interface RelayHooks {
  log: Logger;
  /** Payload bytes from the client to the VM. */
  toVm(n: number): void;
  /** Payload bytes from the VM to the client. */
  toClient(n: number): void;
}

function onceEvent(emitter: NodeJS.EventEmitter, event: string): Promise<void> {
  return new Promise((resolve) => emitter.once(event, () => resolve()));
}

/** Resolves once everything written to `w` so far has gone out, or when `gone` settles first. */
function flushed(w: Writable, gone: Promise<void>): Promise<void> {
  if (w.writableEnded || w.destroyed) return Promise.resolve();
  return Promise.race([new Promise<void>((resolve) => w.write(EMPTY, () => resolve())), gone]);
}

/** Ends a stream and resolves when it finished, or when `gone` settles first. */
function ended(w: Writable, gone: Promise<void>): Promise<void> {
  if (w.writableFinished || w.destroyed) return Promise.resolve();
  const done = onceEvent(w, 'finish');
  if (!w.writableEnded) w.end();
  return Promise.race([done, gone]);
}

/**
 * Finishes a client channel the way sshd does: all output and stderr delivered, then the exit
 * status (or signal), then EOF and close.
 */
export async function finishClientChannel(
  down: ServerChannel,
  exit: ExitInfo | null,
  log: Logger,
): Promise<void> {
  const gone = onceEvent(down, 'close');
  await flushed(down, gone);
  await ended(down.stderr, gone);
  if (exit) {
    try {
      if ('code' in exit) down.exit(exit.code);
      else down.exit(exit.signal, exit.coreDumped, exit.message);
    } catch (err) {
      // An exit signal ssh2 does not know by name: report a generic failure status instead.
      log.debug({ err: (err as Error).message }, 'could not relay exit signal');
      down.exit(255);
    }
  }
  down.end();
}

/** Writes a short notice to the client's stderr (CRLF when the client has a terminal). */
export function notice(down: ServerChannel, text: string, crlf: boolean): void {
  if (down.stderr.writableEnded || down.stderr.destroyed) return;
  down.stderr.write(`${crlf ? text.replace(/\n/g, '\r\n') : text}`);
}

/**
 * Ends a client channel from the gateway's side: the notice, exit status 255, then the close.
 * Resolves once the client has closed its end, so its output has been written out.
 */
export function abortClientChannel(down: ServerChannel, text: string, crlf: boolean): Promise<void> {
  const gone = onceEvent(down, 'close');
  notice(down, text, crlf);
  try {
    down.exit(255);
  } catch {
    // The channel is already on its way out.
  }
  down.close();
  return gone;
}

/**
 * Connects a client channel with the matching VM channel. Data flows through `pipe`, so each
 * side only reads as fast as the other side's SSH window allows (ssh2 stops adjusting the window
 * of a paused channel): at most one channel window is buffered per direction. EOF from the client
 * reaches the VM; when the VM closes its channel, the client gets the rest of the output, the exit
 * status and the close. When the client closes first, the VM channel is closed too.
 */
export function relayChannel(down: ServerChannel, up: ClientChannel, hooks: RelayHooks): Promise<void> {
  let exit: ExitInfo | null = null;
  up.on('exit', (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
    exit =
      typeof code === 'number'
        ? { code }
        : { signal: String(signal ?? 'KILL'), coreDumped: Boolean(dump), message: String(desc ?? '') };
  });

  const ignore = (which: string) => (err: Error) =>
    hooks.log.debug({ err: err.message, stream: which }, 'channel stream error');
  down.on('error', ignore('client'));
  down.stderr.on('error', ignore('client stderr'));
  up.on('error', ignore('vm'));
  up.stderr.on('error', ignore('vm stderr'));

  up.on('data', (chunk: Buffer) => hooks.toClient(chunk.length));
  up.stderr.on('data', (chunk: Buffer) => hooks.toClient(chunk.length));
  down.on('data', (chunk: Buffer) => hooks.toVm(chunk.length));

  up.pipe(down, { end: false });
  up.stderr.pipe(down.stderr, { end: false });
  down.pipe(up);

  const downClosed = onceEvent(down, 'close');
  const upClosed = onceEvent(up, 'close');
  const upStderrDone = up.stderr.readableEnded ? Promise.resolve() : onceEvent(up.stderr, 'end');

  let clientGone = false;
  void downClosed.then(() => {
    clientGone = true;
    down.unpipe(up);
    up.unpipe(down);
    up.stderr.unpipe(down.stderr);
    up.close();
  });

  return Promise.all([upClosed, upStderrDone]).then(async () => {
    down.unpipe(up);
    if (!clientGone) await finishClientChannel(down, exit, hooks.log);
  });
}
