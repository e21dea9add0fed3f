import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { mask } from '../domain/account.js';
import { wxError } from '../domain/errcodes.js';
import type { FaultEndpoint } from '../domain/faults.js';
import type { ApiCall } from '../domain/records.js';
import { rid } from '../simulator.js';
import { type RouteContext, takeFaults } from './faults.js';

/** WeChat answers JSON with this exact content type. */
const WX_JSON = 'application/json; encoding=utf-8';
const NGINX_500 =
  '<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n' +
  '<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

type Query = Record<string, string | undefined>;

function maskedQuery(q: Query): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    out[k] = k === 'access_token' || k === 'secret' ? (mask(v) ?? '') : v;
  }
  return out;
}

function bodyForLog(raw: string | undefined): unknown {
  if (raw === undefined || raw === '') return null;
  try {
    const v = JSON.parse(raw) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v) && 'secret' in v) {
      const s = (v as Record<string, unknown>)['secret'];
      return { ...v, secret: typeof s === 'string' ? mask(s) : s };
    }
    return v;
  } catch {
    return raw.length > 4096 ? `${raw.slice(0, 4096)}…` : raw;
  }
}

/**
 * The `api.weixin.qq.com` endpoints the bridge uses. Every call is recorded (secrets masked)
 * and goes through the endpoint's armed faults first.
 */
export function registerWeChatApi(app: FastifyInstance, ctx: RouteContext): void {
  const { sim } = ctx;

  app.register(async (scope) => {
    // WeChat reads bodies itself whatever the Content-Type says: take every body as text.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

    const handle =
      (
        endpoint: FaultEndpoint,
        method: 'GET' | 'POST',
        answer: (q: Query, raw: string | undefined) => object,
      ) =>
      async (req: FastifyRequest, reply: FastifyReply) => {
        const started = performance.now();
        const q = (req.query ?? {}) as Query;
        const raw = typeof req.body === 'string' ? req.body : undefined;
        const path = req.url.split('?')[0] ?? req.url;
        const token = q['access_token'];
        const record = (c: Pick<ApiCall, 'httpStatus' | 'errcode' | 'fault'>) =>
          sim.recordCall({
            endpoint,
            method: req.method,
            path,
            query: maskedQuery(q),
            body: bodyForLog(raw),
            tokenHint: token ? token.slice(0, 8) : null,
            latencyMs: Math.round(performance.now() - started),
            ...c,
          });

        const decision = await takeFaults(ctx, endpoint, req, reply);
        const action = decision.action;
        if (action?.kind === 'timeout') {
          record({ httpStatus: null, errcode: null, fault: 'timeout' });
          return reply;
        }
        if (action?.kind === 'http500') {
          record({ httpStatus: 500, errcode: null, fault: 'http500' });
          return reply.code(500).type('text/html').send(NGINX_500);
        }
        let result: object;
        if (action?.kind === 'errcode') {
          result = wxError(action.errcode, rid());
        } else if (req.method !== method) {
          result = wxError(method === 'GET' ? 43001 : 43002);
        } else {
          result = answer(q, raw);
        }
        const errcode = 'errcode' in result ? (result.errcode as number) : 0;
        record({ httpStatus: 200, errcode, fault: action?.kind === 'errcode' ? 'errcode' : null });
        // A Buffer keeps the header exactly as WeChat sends it (fastify would append a charset to a string).
        return reply
          .code(200)
          .header('content-type', WX_JSON)
          .send(Buffer.from(JSON.stringify(result), 'utf8'));
      };

    scope.route({
      method: ['GET', 'POST'],
      url: '/cgi-bin/token',
      handler: handle('token', 'GET', (q) => sim.apiToken(q)),
    });
    scope.route({
      method: ['GET', 'POST'],
      url: '/cgi-bin/stable_token',
      handler: handle('stable_token', 'POST', (_q, raw) => sim.apiStableToken(raw)),
    });
    scope.route({
      method: ['GET', 'POST'],
      url: '/cgi-bin/message/custom/send',
      handler: handle('custom_send', 'POST', (q, raw) => sim.apiCustomSend(q['access_token'], raw)),
    });
    scope.route({
      method: ['GET', 'POST'],
      url: '/cgi-bin/message/custom/typing',
      handler: handle('typing', 'POST', (q, raw) => sim.apiTyping(q['access_token'], raw)),
    });
  });
}
