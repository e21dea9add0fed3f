import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the fake WeChat API received. */
export interface Received {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
}

type Reply = { status?: number; json?: unknown; raw?: string; delayMs?: number; hang?: boolean };

/**
 * A small stand-in for api.weixin.qq.com on 127.0.0.1 (port 0): token, stable_token, custom
 * send and typing, with real access-token bookkeeping (issued, revoked, expired) and hooks to
 * inject errcodes, HTTP errors, delays and hangs. Used only by this package's tests; the full
 * simulator lives in apps/simulator.
 */
export class FakeWeChat {
  readonly appId: string;
  readonly secret: string;
  readonly received: Received[] = [];
  /** Seconds reported as expires_in for new tokens. */
  expiresInS = 7200;
  /** Delay before answering a token request. */
  tokenDelayMs = 0;
  /** Overrides for the next token requests (FIFO), then normal behaviour. */
  readonly tokenReplies: Reply[] = [];
  /** Overrides for the next send/typing requests (FIFO), then normal behaviour. */
  readonly apiReplies: Reply[] = [];
  readonly valid = new Set<string>();
  #issued = 0;
  #server: Server | undefined;
  readonly #hanging = new Set<ServerResponse>();
  url = '';

  constructor(appId = 'wx1234567890abcdef', secret = 'super-secret-app-secret-0123456789') {
    this.appId = appId;
    this.secret = secret;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.#server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#hanging.clear();
    const server = this.#server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  tokenRequests(): Received[] {
    return this.received.filter((r) => r.path === '/cgi-bin/token' || r.path === '/cgi-bin/stable_token');
  }

  apiRequests(path?: string): Received[] {
    return this.received.filter((r) => r.path.startsWith('/cgi-bin/message/') && (!path || r.path === path));
  }

  /** Makes every token issued so far invalid (as after a classic /cgi-bin/token call elsewhere). */
  revokeAll(): void {
    this.valid.clear();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = rawBody ? JSON.parse(rawBody) : undefined;
    } catch {
      body = rawBody;
    }
    const received: Received = {
      method: req.method ?? '',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
    };
    this.received.push(received);

    const isToken = url.pathname === '/cgi-bin/token' || url.pathname === '/cgi-bin/stable_token';
    const override = (isToken ? this.tokenReplies : this.apiReplies).shift();
    if (isToken && this.tokenDelayMs > 0) await sleep(this.tokenDelayMs);
    if (override) return this.#reply(res, override);

    if (url.pathname === '/cgi-bin/stable_token' && req.method === 'POST') {
      const b = (body ?? {}) as Record<string, unknown>;
      if (b['grant_type'] !== 'client_credential')
        return this.#json(res, { errcode: 40002, errmsg: 'invalid grant_type' });
      // Like WeChat: the current token comes back while it has more than 5 minutes to live,
      // unless force_refresh.
      const current = this.#current;
      if (
        b['force_refresh'] !== true &&
        current &&
        this.valid.has(current) &&
        this.#currentExpiresAt - Date.now() > 300_000
      ) {
        if (b['appid'] === this.appId && b['secret'] === this.secret) {
          const left = Math.floor((this.#currentExpiresAt - Date.now()) / 1000);
          return this.#json(res, { access_token: current, expires_in: left });
        }
      }
      return this.#issue(res, b['appid'], b['secret']);
    }
    if (url.pathname === '/cgi-bin/token' && req.method === 'GET') {
      if (url.searchParams.get('grant_type') !== 'client_credential') {
        return this.#json(res, { errcode: 40002, errmsg: 'invalid grant_type' });
      }
      return this.#issue(res, url.searchParams.get('appid'), url.searchParams.get('secret'));
    }
    if (
      (url.pathname === '/cgi-bin/message/custom/send' ||
        url.pathname === '/cgi-bin/message/custom/typing') &&
      req.method === 'POST'
    ) {
      const token = url.searchParams.get('access_token') ?? '';
      if (!token) return this.#json(res, { errcode: 41001, errmsg: 'access_token missing' });
      if (!this.valid.has(token)) return this.#json(res, { errcode: 40001, errmsg: 'invalid credential' });
      return this.#json(res, { errcode: 0, errmsg: 'ok' });
    }
    res.statusCode = 404;
    res.end('not found');
  }

  #current: string | null = null;
  #currentExpiresAt = 0;

  #issue(res: ServerResponse, appId: unknown, secret: unknown): void {
    if (appId !== this.appId) {
      this.#json(res, { errcode: 40013, errmsg: 'invalid appid' });
      return;
    }
    if (secret !== this.secret) {
      this.#json(res, { errcode: 40125, errmsg: 'invalid appsecret' });
      return;
    }
    this.#issued++;
    const token = `ACCESS_TOKEN_${this.#issued}_${'x'.repeat(20)}`;
    this.valid.add(token);
    this.#current = token;
    this.#currentExpiresAt = Date.now() + this.expiresInS * 1000;
    this.#json(res, { access_token: token, expires_in: this.expiresInS });
  }

  async #reply(res: ServerResponse, r: Reply): Promise<void> {
    if (r.hang) {
      this.#hanging.add(res);
      return;
    }
    if (r.delayMs) await sleep(r.delayMs);
    res.statusCode = r.status ?? 200;
    if (r.raw !== undefined) {
      res.end(r.raw);
      return;
    }
    this.#json(res, r.json ?? { errcode: 0, errmsg: 'ok' });
  }

  #json(res: ServerResponse, value: unknown): void {
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(value));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
