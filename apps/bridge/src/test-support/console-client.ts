import { request } from 'node:http';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request with full control over headers (Host, Origin, Cookie) and the local address. */
export function rawRequest(
  method: string,
  url: string,
  opts: { headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method,
        hostname: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        headers: {
          ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}),
          ...opts.headers,
        },
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** A logged-in console session: its cookie and CSRF token. */
export interface ConsoleSession {
  cookie: string;
  csrf: string;
}

/** Posts the login form; returns the response and, on success, the session. */
export async function consoleLogin(
  bridgeUrl: string,
  token: string,
  opts: { headers?: Record<string, string>; localAddress?: string } = {},
): Promise<{ res: RawResponse; session: ConsoleSession | null }> {
  const res = await rawRequest('POST', `${bridgeUrl}/admin/login`, {
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...opts.headers },
    body: new URLSearchParams({ token }).toString(),
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
  });
  const set = res.headers['set-cookie']?.[0];
  if (res.status !== 303 || !set) return { res, session: null };
  const cookie = set.split(';')[0] as string;
  const page = await rawRequest('GET', `${bridgeUrl}/admin`, { headers: { cookie } });
  const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(page.body)?.[1] ?? '';
  return { res, session: { cookie, csrf } };
}
