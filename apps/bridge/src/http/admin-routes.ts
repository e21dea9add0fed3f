import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { AdminOrchestratorClient, fetchMetrics } from '../adapters/admin-orchestrator.js';
import { OverviewLoader } from '../adapters/admin-overview.js';
import {
  AdminSessions,
  DEFAULT_LOGIN_LIMITS,
  type LoginLimits,
  secretEquals,
} from '../adapters/admin-sessions.js';
import type { ConsoleJournal } from '../adapters/console-journal.js';
import type { RedisQueue } from '../adapters/queue.js';
import type { UserStore } from '../adapters/user-store.js';
import type { Config } from '../config.js';
import { BridgeError, httpReplyFor, isBridgeError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { CONSOLE_CSS, CONSOLE_JS } from './admin-assets.js';
import { renderActionResult, renderConsolePage, renderLoginPage, renderSections } from './admin-html.js';

export const ADMIN_COOKIE = 'moltage_admin';
const USER_ID = /^[A-Za-z0-9_-]{1,64}$/;
const ACTIONS = ['stop', 'start', 'reset'] as const;
type Action = (typeof ACTIONS)[number];

export interface AdminRouteDeps {
  config: Pick<
    Config,
    | 'ADMIN_TOKEN'
    | 'ADMIN_SESSION_TTL_S'
    | 'SSH_GATEWAY_STATUS_URL'
    | 'BRIDGE_BASE_URL'
    | 'ORCHESTRATOR_URL'
    | 'ORCHESTRATOR_TOKEN'
    | 'WECHAT_APPID'
    | 'WECHAT_API_BASE'
    | 'VM_READY_TIMEOUT_MS'
  >;
  redis: Redis;
  queue: RedisQueue;
  metrics: Metrics;
  users: UserStore;
  /** The console log; present whenever ADMIN_TOKEN is set. */
  journal: ConsoleJournal | undefined;
  now: () => number;
  loginLimits?: LoginLimits;
  /** How often the page refreshes itself (default 3000). */
  pollMs?: number;
}

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // Not no-referrer: with it Chromium sends `Origin: null` on same-origin form posts.
  'referrer-policy': 'same-origin',
  'x-robots-tag': 'noindex',
};

function readCookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function field(body: unknown, name: string): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const v = (body as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
}

function wantsJson(req: FastifyRequest): boolean {
  const accept = req.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
}

/**
 * The web console under `/admin` (README → Console), enabled by ADMIN_TOKEN: a login form that
 * opens a session (HttpOnly, SameSite=Strict cookie; Secure over https; stored in Redis with a
 * TTL), failed logins limited per client address, and — for a session — the console page, the
 * sections it refreshes, the same data as JSON, the VM actions (POST with the session's CSRF
 * token from the same origin) and the other services' /metrics. Without ADMIN_TOKEN every
 * `/admin` URL answers 404 saying so.
 */
export async function adminRoutes(app: FastifyInstance, deps: AdminRouteDeps): Promise<void> {
  const { config } = deps;
  const adminToken = config.ADMIN_TOKEN;
  if (!adminToken || !deps.journal) {
    // Whatever is posted (a login form, JSON, …) gets the same answer.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 4096 }, (_req, _body, done) =>
      done(null, null),
    );
    const { statusCode, body } = httpReplyFor(
      new BridgeError('BRIDGE_CONSOLE_DISABLED', 'console disabled: set ADMIN_TOKEN'),
    );
    const disabled = async (_req: FastifyRequest, reply: FastifyReply) => reply.code(statusCode).send(body);
    app.all('/admin', disabled);
    app.all('/admin/*', disabled);
    return;
  }

  const sessions = new AdminSessions(
    deps.redis,
    adminToken,
    config.ADMIN_SESSION_TTL_S,
    deps.loginLimits ?? DEFAULT_LOGIN_LIMITS,
  );
  const orchestrator = new AdminOrchestratorClient(config.ORCHESTRATOR_URL, config.ORCHESTRATOR_TOKEN, {
    startTimeoutMs: config.VM_READY_TIMEOUT_MS + 30_000,
  });
  const loader = new OverviewLoader({
    redis: deps.redis,
    journal: deps.journal,
    queue: deps.queue,
    orchestrator,
    metrics: deps.metrics,
    appId: config.WECHAT_APPID,
    apiBase: config.WECHAT_API_BASE,
    sshGatewayStatusUrl: config.SSH_GATEWAY_STATUS_URL,
    now: deps.now,
    startedAt: deps.now(),
  });
  const base = new URL(config.BRIDGE_BASE_URL);

  const isHttps = (req: FastifyRequest) =>
    req.protocol === 'https' || (base.protocol === 'https:' && req.headers.host === base.host);
  const cookie = (req: FastifyRequest, value: string, maxAgeS: number) =>
    `${ADMIN_COOKIE}=${value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${isHttps(req) ? '; Secure' : ''}`;

  /** A state-changing request must come from a page of this console (or a non-browser client). */
  const sameOrigin = (req: FastifyRequest): boolean => {
    const origin = req.headers.origin;
    if (origin === undefined) {
      const site = req.headers['sec-fetch-site'];
      return site === undefined || site === 'same-origin' || site === 'none';
    }
    try {
      const host = new URL(origin).host;
      return host === req.headers.host || host === base.host;
    } catch {
      return false;
    }
  };

  const current = async (req: FastifyRequest) => {
    const sid = readCookie(req, ADMIN_COOKIE);
    const session = await sessions.get(sid);
    return session ? { sid: sid as string, session } : null;
  };

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 4096 },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(String(body)))),
  );
  app.addHook('onSend', async (req, reply) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    if (!req.url.startsWith('/admin/assets/')) reply.header('cache-control', 'no-store');
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    let status = 500;
    let message = 'internal error';
    if (isBridgeError(err) && err.statusCode) {
      status = err.statusCode;
      message = err.message;
    } else if (isBridgeError(err, 'BRIDGE_ORCH_UNAVAILABLE')) {
      status = 502;
      message = err.message;
    } else if (typeof err.statusCode === 'number' && err.statusCode < 500) {
      status = err.statusCode;
      message = err.message;
    }
    if (status >= 500) req.log.error({ err }, 'console request failed');
    if (wantsJson(req) || req.url.startsWith('/admin/api/')) {
      return reply
        .code(status)
        .send({ error: message, code: isBridgeError(err) ? err.code : 'BRIDGE_INTERNAL' });
    }
    return reply.code(status).type('text/html; charset=utf-8').send(renderActionResult(false, message));
  });

  const html = (reply: FastifyReply, status: number, body: string) =>
    reply.code(status).type('text/html; charset=utf-8').send(body);

  app.get('/admin/assets/console.css', async (_req, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'no-cache').send(CONSOLE_CSS),
  );
  app.get('/admin/assets/console.js', async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(CONSOLE_JS),
  );

  app.get('/admin', async (req, reply) => {
    const s = await current(req);
    if (!s) return html(reply, 401, renderLoginPage());
    return html(reply, 200, renderConsolePage(await loader.load(), s.session.csrf, deps.pollMs ?? 3000));
  });
  app.get('/admin/', async (_req, reply) => reply.redirect('/admin', 308));

  app.get('/admin/login', async (req, reply) => {
    if (await current(req)) return reply.redirect('/admin', 303);
    return html(reply, 200, renderLoginPage());
  });

  app.post('/admin/login', async (req, reply) => {
    if (!sameOrigin(req))
      return html(reply, 403, renderLoginPage('跨站请求被拒绝 Cross-site request refused.'));
    const ip = req.ip;
    const waitS = await sessions.blockedForS(ip);
    if (waitS > 0) {
      req.log.warn({ ip }, 'console login refused: too many failed attempts');
      return html(
        reply.header('retry-after', String(waitS)),
        429,
        renderLoginPage(
          `失败次数过多，请 ${Math.ceil(waitS / 60)} 分钟后再试。 Too many failed attempts: try again in ${Math.ceil(waitS / 60)} min.`,
        ),
      );
    }
    const token = field(req.body, 'token') ?? '';
    if (!sessions.tokenMatches(token)) {
      const left = await sessions.recordFailure(ip);
      req.log.warn({ ip, attemptsLeft: left }, 'console login failed: wrong token');
      return html(
        reply,
        401,
        renderLoginPage(
          `令牌不正确 Wrong token.${left <= 2 ? ` 还可尝试 ${left} 次 ${left} attempts left.` : ''}`,
        ),
      );
    }
    await sessions.clearFailures(ip);
    const { sid } = await sessions.create(new Date(deps.now()));
    req.log.info({ ip }, 'console login');
    return reply.header('set-cookie', cookie(req, sid, sessions.ttlS)).redirect('/admin', 303);
  });

  app.post('/admin/logout', async (req, reply) => {
    if (!sameOrigin(req)) throw new BridgeError('BRIDGE_FORBIDDEN', 'cross-site request refused');
    await sessions.destroy(readCookie(req, ADMIN_COOKIE));
    return reply.header('set-cookie', cookie(req, '', 0)).redirect('/admin/login', 303);
  });

  app.get('/admin/partial', async (req, reply) => {
    const s = await current(req);
    if (!s) return html(reply, 401, '');
    return html(reply, 200, renderSections(await loader.load(), s.session.csrf));
  });

  app.get('/admin/api/overview', async (req, reply) => {
    if (!(await current(req)))
      throw new BridgeError('BRIDGE_UNAUTHORIZED', 'log in first (POST /admin/login)');
    return reply.send(await loader.load());
  });

  app.get('/admin/metrics/:service', async (req, reply) => {
    if (!(await current(req)))
      throw new BridgeError('BRIDGE_UNAUTHORIZED', 'log in first (POST /admin/login)');
    const { service } = req.params as { service: string };
    let url: string;
    if (service === 'orchestrator') url = `${config.ORCHESTRATOR_URL}/metrics`;
    else if (service === 'ssh-gateway' && config.SSH_GATEWAY_STATUS_URL)
      url = `${config.SSH_GATEWAY_STATUS_URL}/metrics`;
    else throw new BridgeError('BRIDGE_NOT_FOUND', `no metrics for "${service}"`);
    const m = await fetchMetrics(url);
    return reply.code(m.status).type(m.contentType).send(m.body);
  });

  app.post('/admin/vms/:openid/:action', async (req, reply) => {
    const s = await current(req);
    if (!s) throw new BridgeError('BRIDGE_UNAUTHORIZED', 'log in first (POST /admin/login)');
    const given = (req.headers['x-csrf-token'] as string | undefined) ?? field(req.body, 'csrf') ?? '';
    if (!sameOrigin(req) || !secretEquals(given, s.session.csrf)) {
      throw new BridgeError('BRIDGE_FORBIDDEN', 'missing or wrong CSRF token, or a cross-site request');
    }
    const { openid, action } = req.params as { openid: string; action: string };
    if (!(ACTIONS as readonly string[]).includes(action)) {
      throw new BridgeError('BRIDGE_NOT_FOUND', `unknown action "${action}" (stop, start, reset)`);
    }
    if (!USER_ID.test(openid)) throw new BridgeError('BRIDGE_BAD_REQUEST', 'not a valid user id');
    req.log.info({ openid, action }, 'console VM action');
    const message = await runAction(action as Action, openid);
    if (wantsJson(req)) return reply.send({ ok: true, message });
    return html(reply, 200, renderActionResult(true, message));
  });

  async function runAction(action: Action, openid: string): Promise<string> {
    if (action === 'stop') {
      await orchestrator.stop(openid);
      return `已停止 Stopped ${openid}`;
    }
    // Start as the bridge does: with the callback URL and the user's callback token, so the agent in
    // the VM can answer.
    const user = await deps.users.get(openid);
    const callback = user
      ? { url: `${config.BRIDGE_BASE_URL}/callback`, token: user.callbackToken }
      : undefined;
    const vm =
      action === 'start'
        ? await orchestrator.start(openid, callback)
        : await orchestrator.reset(openid, callback);
    const state = vm?.state ?? 'unknown';
    return action === 'start'
      ? `已启动 Started ${openid} (${state})`
      : `已重建 Reset ${openid} (${state}); 数据盘保留 data disk kept`;
  }

  app.all('/admin/*', async () => {
    throw new BridgeError('BRIDGE_NOT_FOUND', 'no such console page');
  });
}
