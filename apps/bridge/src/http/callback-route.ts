import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AgentWaits } from '../adapters/agent-waits.js';
import type { ConsoleJournal } from '../adapters/console-journal.js';
import type { RedisQueue } from '../adapters/queue.js';
import type { UserStore } from '../adapters/user-store.js';
import { BridgeError, httpReplyFor } from '../errors.js';
import type { ReplyData } from '../handlers/processor.js';
import type { Metrics } from '../metrics.js';

export const MAX_CALLBACK_BYTES = 1024 * 1024;
export const MAX_REPLY_CHARS = 200_000;

export interface CallbackRouteDeps {
  users: UserStore;
  queue: RedisQueue;
  waits: AgentWaits;
  metrics: Metrics;
  now: () => number;
  /** The console's log (console enabled): records each reply received. */
  journal?: ConsoleJournal | undefined;
}

function pick(...values: unknown[]): string | undefined {
  for (const v of values) if (typeof v === 'string' && v !== '') return v;
  return undefined;
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * `POST /callback`: an agent's reply. Authenticated by the per-user callback token the bridge
 * issued (Authorization: Bearer, `token`/`callback_token` in the body, or `token` in the query
 * for the community plugin, which posts to the callback URL as given). A token only ever reaches
 * its own openid: naming another openid is 403. Accepts our payload (`openid`, `text`,
 * `message_id`) and the community plugin's (`success`, `result`, `error`).
 */
export async function callbackRoute(app: FastifyInstance, deps: CallbackRouteDeps): Promise<void> {
  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    let e: unknown = err;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      e = new BridgeError('BRIDGE_BODY_TOO_LARGE', `body is larger than ${MAX_CALLBACK_BYTES} bytes`);
    } else if (!(err instanceof BridgeError) && typeof err.statusCode === 'number' && err.statusCode < 500) {
      e = new BridgeError('BRIDGE_BAD_REQUEST', err.message);
    }
    const { statusCode, body } = httpReplyFor(e);
    deps.metrics.callbacks.inc({ outcome: String(statusCode) });
    if (statusCode >= 500) req.log.error({ err }, 'callback handling failed');
    else req.log.info({ code: body.code }, 'callback refused');
    void reply.code(statusCode).send(body);
  });

  app.post(
    '/callback',
    { bodyLimit: MAX_CALLBACK_BYTES },
    async (
      req: FastifyRequest<{ Querystring: Record<string, string | undefined>; Body: unknown }>,
      reply: FastifyReply,
    ) => {
      const body = obj(req.body);
      const metadata = obj(body['metadata']);
      const auth = req.headers.authorization;
      const bearer = typeof auth === 'string' && /^bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
      const token = pick(bearer, body['token'], body['callback_token'], req.query['token']);
      if (!token) throw new BridgeError('BRIDGE_UNAUTHORIZED', 'callback token is missing');
      const owner = await deps.users.resolveCallbackToken(token);
      if (!owner) throw new BridgeError('BRIDGE_UNAUTHORIZED', 'unknown callback token');
      // Every openid the request names (body, metadata, query) must be the token's own user.
      const claims = [body['openid'], metadata['openid'], req.query['openid']].filter(
        (v) => v !== undefined && v !== null && v !== '',
      );
      if (claims.some((v) => typeof v !== 'string')) {
        throw new BridgeError('BRIDGE_BAD_REQUEST', 'openid must be a single string');
      }
      if (claims.some((v) => v !== owner.openid)) {
        throw new BridgeError('BRIDGE_FORBIDDEN', 'this token may not message that user');
      }
      const openid = owner.openid;

      const success = body['success'] !== false;
      const text = pick(body['text'], body['result'], body['reply'], body['content']);
      if (success && (text === undefined || text.trim() === '')) {
        throw new BridgeError('BRIDGE_BAD_REQUEST', 'text (or result) is required');
      }
      if (text !== undefined && text.length > MAX_REPLY_CHARS) {
        throw new BridgeError('BRIDGE_BAD_REQUEST', `text is longer than ${MAX_REPLY_CHARS} characters`);
      }
      if (!success) {
        const error = pick(body['error']) ?? 'no detail';
        req.log.warn({ openid, error: error.slice(0, 300) }, 'agent reported a failure');
      }
      const messageId = pick(body['message_id'], metadata['message_id']);

      // The reply arrived: queueing it ends the wait for that message (all of them when unnamed),
      // so no timeout notice, and the user's next message may go to the agent.
      const awaited = await deps.waits.peek(openid, messageId);
      const receivedAt = awaited.length ? Math.min(...awaited.map((w) => w.receivedAt)) : undefined;

      const idem = pick(req.headers['idempotency-key']);
      const dedupKey = idem
        ? `cb:${openid}:${createHash('sha256').update(idem).digest('hex').slice(0, 32)}`
        : messageId
          ? `cb:${createHash('sha256')
              .update(`${openid}\n${messageId}\n${success}\n${text ?? ''}`)
              .digest('hex')
              .slice(0, 32)}`
          : undefined;
      const data: ReplyData = {
        text: text ?? '',
        success,
        ...(messageId !== undefined ? { messageId } : {}),
        ...(receivedAt !== undefined ? { receivedAt } : {}),
      };
      const eid = dedupKey ? `r:${dedupKey.slice(3)}` : `r:${randomUUID()}`;
      let queued: boolean;
      try {
        queued = await deps.queue.enqueue(
          openid,
          {
            eid,
            kind: 'reply',
            data: JSON.stringify(data),
            at: deps.now(),
          },
          {
            ...(dedupKey ? { dedupKey } : {}),
            answers: messageId !== undefined ? { messageId } : { all: true },
          },
        );
      } catch (err) {
        throw new BridgeError('BRIDGE_QUEUE_UNAVAILABLE', 'queue unavailable, retry later', { cause: err });
      }
      deps.journal?.reply(openid, eid, deps.now(), data, !queued);
      deps.metrics.callbacks.inc({ outcome: queued ? 'queued' : 'duplicate' });
      return reply.send({ ok: true, ...(queued ? {} : { duplicate: true }) });
    },
  );
}
