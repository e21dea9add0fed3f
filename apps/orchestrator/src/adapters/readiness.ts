import { createConnection } from 'node:net';

/** Connects and reads the first bytes; true when they start with `expect` (e.g. "SSH-"). */
export function bannerAnswers(
  host: string,
  port: number,
  expect: string,
  timeoutMs = 1500,
): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    let buf = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.length >= expect.length) done(buf.startsWith(expect));
    });
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

/** Whether something accepts TCP connections and keeps them open (the agent's HTTP port). */
export function portAnswers(host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    // A user-mode forward accepts even when nobody listens in the guest, then closes at once:
    // a real HTTP server answers a request.
    sock.on('connect', () => sock.write('GET / HTTP/1.0\r\n\r\n'));
    sock.on('data', (d) => done(d.toString('latin1').startsWith('HTTP/')));
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}
