import { Writable } from 'node:stream';

/** A logger destination that keeps every line in memory, for tests that read the logs back. */
export function logSink(): { sink: Writable; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { sink, text: () => lines.join('') };
}
