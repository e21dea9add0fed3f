import { request } from 'undici';
import { WeChatApiError, WeChatError } from './errors.js';
import { MAX_TEXT_BYTES, utf8ByteLength } from './split.js';
import { type CachedToken, MemoryTokenCache, type TokenCache } from './token-cache.js';

export const DEFAULT_API_BASE_URL = 'https://api.weixin.qq.com';

/** errcodes meaning "this access token is not (or no longer) valid". */
export const INVALID_TOKEN_ERRCODES: ReadonlySet<number> = new Set([40001, 40014, 42001]);

export interface WeChatApiClientOptions {
  appId: string;
  appSecret: string;
  /** Default 'https://api.weixin.qq.com'; tests point it at the simulator. */
  baseUrl?: string;
  /** 'stable' (default) → POST /cgi-bin/stable_token; 'classic' → GET /cgi-bin/token. */
  tokenMode?: 'stable' | 'classic';
  /** Default: a MemoryTokenCache private to this client. Use RedisTokenCache to share across processes. */
  tokenCache?: TokenCache;
  /** Refresh a token this long before it expires. Default 300000 (5 min). */
  refreshAheadMs?: number;
  /** Timeout of each HTTP request. Default 5000. */
  timeoutMs?: number;
  /** How long to wait for another process's refresh before refreshing anyway. Default 3 × timeoutMs. */
  lockWaitMs?: number;
  /** Called when the token cache (e.g. Redis) fails; the client then carries on without it. */
  onCacheError?: (err: unknown) => void;
}

interface TokenResponse {
  access_token?: unknown;
  expires_in?: unknown;
  errcode?: unknown;
  errmsg?: unknown;
}

export interface NewsArticle {
  title: string;
  description?: string;
  url: string;
  picurl?: string;
}

/** A token is usable for a request if it has at least this long to live. */
const MIN_REMAINING_MS = 10_000;

/**
 * Client for the WeChat Official Account server API: access token (stable or classic) shared
 * through a {@link TokenCache}, customer-service messages and the typing indicator.
 *
 * Errors: WeChatApiError (`errcode != 0`), WeChatError WECHAT_HTTP (network failure, non-2xx,
 * non-JSON) and WECHAT_TIMEOUT. No error message ever contains the AppSecret or a token.
 */
export class WeChatApiClient {
  readonly appId: string;
  readonly #secret: string;
  readonly #baseUrl: string;
  readonly #mode: 'stable' | 'classic';
  readonly #cache: TokenCache;
  readonly #refreshAheadMs: number;
  readonly #timeoutMs: number;
  readonly #lockWaitMs: number;
  readonly #onCacheError: (err: unknown) => void;
  /** Last token this process saw: used when the shared cache is unreachable. */
  #local: CachedToken | null = null;
  #inflight: Promise<string> | null = null;

  constructor(opts: WeChatApiClientOptions) {
    if (!opts.appId || !opts.appSecret) {
      throw new WeChatError('WECHAT_BAD_ARGUMENT', 'appId and appSecret are required');
    }
    this.appId = opts.appId;
    this.#secret = opts.appSecret;
    this.#baseUrl = (opts.baseUrl ?? DEFAULT_API_BASE_URL).replace(/\/+$/, '');
    this.#mode = opts.tokenMode ?? 'stable';
    this.#cache = opts.tokenCache ?? new MemoryTokenCache();
    this.#refreshAheadMs = opts.refreshAheadMs ?? 300_000;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#lockWaitMs = opts.lockWaitMs ?? this.#timeoutMs * 3;
    this.#onCacheError = opts.onCacheError ?? (() => {});
  }

  /**
   * Returns a valid access token: from the cache while it has more than `refreshAheadMs` to
   * live, else refreshed — once per process at a time (single-flight) and once across processes
   * (the cache's lock; the others pick up the new token). `forceRefresh` fetches a new token even
   * if the cached one looks fresh (stable mode sends `force_refresh: true`).
   */
  async getAccessToken(opts: { forceRefresh?: boolean } = {}): Promise<string> {
    if (!opts.forceRefresh) return this.#obtain(null);
    const current = (await this.#readCache()) ?? this.#local;
    return this.#obtain(current?.token ?? '', true);
  }

  /**
   * POSTs JSON to `path?access_token=…` and returns the parsed answer. `errcode != 0` throws
   * WeChatApiError; on 40001/40014/42001 the token is invalidated, refreshed and the call retried
   * once.
   */
  async call<T = Record<string, unknown>>(path: string, body: unknown): Promise<T> {
    const token = await this.getAccessToken();
    try {
      return await this.#post<T>(path, token, body);
    } catch (err) {
      if (!(err instanceof WeChatApiError) || !INVALID_TOKEN_ERRCODES.has(err.errcode)) throw err;
      await this.#invalidate(token);
      const fresh = await this.#obtain(token);
      return await this.#post<T>(path, fresh, body);
    }
  }

  /** Customer-service text message (≤ 2048 UTF-8 bytes; use splitReply for longer text). */
  async sendText(openid: string, content: string): Promise<void> {
    if (utf8ByteLength(content) > MAX_TEXT_BYTES) {
      throw new WeChatError('WECHAT_BAD_ARGUMENT', `text is longer than ${MAX_TEXT_BYTES} UTF-8 bytes`);
    }
    await this.call('/cgi-bin/message/custom/send', { touser: openid, msgtype: 'text', text: { content } });
  }

  async sendImage(openid: string, mediaId: string): Promise<void> {
    await this.call('/cgi-bin/message/custom/send', {
      touser: openid,
      msgtype: 'image',
      image: { media_id: mediaId },
    });
  }

  async sendNews(openid: string, article: NewsArticle): Promise<void> {
    const item: Record<string, string> = { title: article.title, url: article.url };
    if (article.description !== undefined) item['description'] = article.description;
    if (article.picurl !== undefined) item['picurl'] = article.picurl;
    await this.call('/cgi-bin/message/custom/send', {
      touser: openid,
      msgtype: 'news',
      news: { articles: [item] },
    });
  }

  /** Shows ("Typing") or hides ("CancelTyping") the typing indicator in the user's chat. */
  async typing(openid: string, command: 'Typing' | 'CancelTyping'): Promise<void> {
    await this.call('/cgi-bin/message/custom/typing', { touser: openid, command });
  }

  // ---------------------------------------------------------------------------------------------

  #fresh(t: CachedToken | null, now = Date.now()): t is CachedToken {
    return t !== null && t.expiresAt - this.#refreshAheadMs > now;
  }

  #usable(t: CachedToken | null, now = Date.now()): t is CachedToken {
    return t !== null && t.expiresAt - MIN_REMAINING_MS > now;
  }

  async #readCache(): Promise<CachedToken | null> {
    try {
      const v = await this.#cache.get(this.appId);
      if (v) this.#local = v;
      return v;
    } catch (err) {
      this.#onCacheError(err);
      return null;
    }
  }

  async #invalidate(token: string): Promise<void> {
    if (this.#local?.token === token) this.#local = null;
    try {
      await this.#cache.invalidate(this.appId, token);
    } catch (err) {
      this.#onCacheError(err);
    }
  }

  /**
   * `rejected === null`: any fresh token will do. Otherwise the caller needs a token other than
   * `rejected` (it was refused, or a forced refresh was asked for).
   */
  async #obtain(rejected: string | null, force = false): Promise<string> {
    const acceptable = (t: CachedToken | null): t is CachedToken =>
      rejected === null ? this.#fresh(t) : t !== null && t.token !== rejected && this.#usable(t);

    if (rejected === null) {
      if (this.#fresh(this.#local)) return this.#local.token;
      const cached = await this.#readCache();
      if (acceptable(cached)) return cached.token;
    }
    // Single-flight: join a refresh already running in this process (its error is ours too).
    const running = this.#inflight;
    if (running) {
      const token = await running;
      if (token !== rejected) return token;
    }
    const flight = this.#refresh(rejected, acceptable, force);
    this.#inflight = flight;
    try {
      return await flight;
    } finally {
      if (this.#inflight === flight) this.#inflight = null;
    }
  }

  async #refresh(
    rejected: string | null,
    acceptable: (t: CachedToken | null) => t is CachedToken,
    force: boolean,
  ): Promise<string> {
    const underLock = async (): Promise<string> => {
      // Another process may have refreshed while we waited for the lock.
      const cached = await this.#readCache();
      if (acceptable(cached)) return cached.token;
      // After a rejection a plain request already returns a new token once WeChat dropped the old
      // one; force a refresh only when it hands back the rejected token (forced refreshes are
      // rate-limited: WeChat answers 45011 to a second one within 30 s).
      let fetched = await this.#fetchToken(force);
      if (rejected !== null && fetched.token === rejected && this.#mode === 'stable') {
        fetched = await this.#fetchToken(true);
      }
      this.#local = fetched;
      try {
        await this.#cache.set(this.appId, fetched);
      } catch (err) {
        this.#onCacheError(err);
      }
      return fetched.token;
    };

    let result: string | null = null;
    try {
      try {
        result = await this.#cache.withLock(this.appId, underLock, this.#lockWaitMs);
      } catch (err) {
        if (err instanceof WeChatError) throw err;
        // The cache itself failed (e.g. Redis down): refresh without the shared lock.
        this.#onCacheError(err);
        result = await underLock();
      }
      // The lock holder did not finish in time: take its token if it appeared, else refresh anyway.
      result ??= await underLock();
      return result;
    } catch (err) {
      // Refresh failed, but a token that has not expired yet still serves requests.
      const last = this.#local;
      if (rejected === null && this.#usable(last)) return last.token;
      throw err;
    }
  }

  async #fetchToken(force: boolean): Promise<CachedToken> {
    const started = Date.now();
    let answer: TokenResponse;
    if (this.#mode === 'stable') {
      answer = await this.#request<TokenResponse>('/cgi-bin/stable_token', {
        method: 'POST',
        body: {
          grant_type: 'client_credential',
          appid: this.appId,
          secret: this.#secret,
          force_refresh: force,
        },
      });
    } else {
      const query = new URLSearchParams({
        grant_type: 'client_credential',
        appid: this.appId,
        secret: this.#secret,
      });
      answer = await this.#request<TokenResponse>('/cgi-bin/token', { method: 'GET', query });
    }
    const token = answer.access_token;
    const expiresInS = Number(answer.expires_in);
    if (typeof token !== 'string' || token.length === 0 || !Number.isFinite(expiresInS) || expiresInS <= 0) {
      throw new WeChatError('WECHAT_HTTP', 'WeChat token endpoint answered without access_token/expires_in');
    }
    // Measure the lifetime from when we asked, so network delay only makes us refresh earlier.
    return { token, expiresAt: started + expiresInS * 1000 };
  }

  async #post<T>(path: string, token: string, body: unknown): Promise<T> {
    return this.#request<T>(path, {
      method: 'POST',
      query: new URLSearchParams({ access_token: token }),
      body,
    });
  }

  async #request<T>(
    path: string,
    req: { method: 'GET' | 'POST'; query?: URLSearchParams; body?: unknown },
  ): Promise<T> {
    const url = `${this.#baseUrl}${path.startsWith('/') ? '' : '/'}${path}${req.query ? `?${req.query.toString()}` : ''}`;
    // undici's request(), not fetch(): the same client underneath at a fifth of the CPU per call
    // (two calls per answered message: typing and send). The timeout bounds the wait for the
    // answer's headers and then for each piece of its body.
    const body = req.body === undefined ? undefined : JSON.stringify(req.body);
    let text: string;
    let status: number;
    try {
      const res = await request(url, {
        method: req.method,
        headers:
          body === undefined
            ? { accept: 'application/json' }
            : { accept: 'application/json', 'content-type': 'application/json; charset=utf-8' },
        ...(body === undefined ? {} : { body }),
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      if (isTimeout(err)) {
        throw new WeChatError(
          'WECHAT_TIMEOUT',
          `WeChat API ${path} did not answer within ${this.#timeoutMs} ms`,
        );
      }
      throw new WeChatError(
        'WECHAT_HTTP',
        `WeChat API ${path} request failed: ${this.#redact(describe(err))}`,
      );
    }
    if (status < 200 || status > 299) {
      throw new WeChatError('WECHAT_HTTP', `WeChat API ${path} answered HTTP ${status}`, {
        httpStatus: status,
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new WeChatError('WECHAT_HTTP', `WeChat API ${path} answered with a body that is not JSON`, {
        httpStatus: status,
      });
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new WeChatError(
        'WECHAT_HTTP',
        `WeChat API ${path} answered with a JSON value that is not an object`,
        {
          httpStatus: status,
        },
      );
    }
    const errcode = (json as { errcode?: unknown }).errcode;
    if (errcode !== undefined && errcode !== 0 && errcode !== '0') {
      const code = Number(errcode);
      const errmsg = this.#redact(String((json as { errmsg?: unknown }).errmsg ?? ''));
      throw new WeChatApiError(Number.isFinite(code) ? code : -1, errmsg, path);
    }
    return json as T;
  }

  /** Removes the AppSecret and any token this client knows of from text bound for an error. */
  #redact(text: string): string {
    let out = text.replace(/(access_token|secret)=[^&\s"']+/gi, '$1=***');
    for (const s of [this.#secret, this.#local?.token]) {
      if (s && s.length >= 4) out = out.split(s).join('***');
    }
    return out;
  }
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** undici's request() (no AbortSignal is passed) reports its timeouts by these codes only. */
function isTimeout(err: unknown): boolean {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && TIMEOUT_CODES.has(code);
}

/** "fetch failed" alone says nothing; include the underlying cause's code/message. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return `${err.message} (${typeof code === 'string' ? `${code}: ` : ''}${cause.message})`;
  }
  return err.message;
}
