import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { RedisQueue } from '../adapters/queue.js';
import type { ReplyPages } from '../adapters/user-store.js';
import { renderMissingPage, renderReplyPage } from '../domain/reply-page-html.js';
import type { Metrics } from '../metrics.js';

export interface OpsRouteDeps {
  redis: Redis;
  queue: RedisQueue;
  pages: ReplyPages;
  metrics: Metrics;
  pageTtlS: number;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** `GET /health`, `GET /metrics` and the long-reply page `GET /r/<id>`. */
export async function opsRoutes(app: FastifyInstance, deps: OpsRouteDeps): Promise<void> {
  app.get('/health', async (_req, reply) => {
    try {
      await withTimeout(deps.redis.ping(), 2000);
      const queue = await withTimeout(deps.queue.stats(), 2000);
      return reply.send({ status: 'ok', redis: 'ok', queue });
    } catch (err) {
      return reply.code(503).send({
        status: 'error',
        redis: 'unreachable',
        error: err instanceof Error ? err.message : String(err),
      });
    }
  });

  app.get('/metrics', async (_req, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });

  app.get('/r/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    void reply
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-robots-tag', 'noindex')
      .header('cache-control', 'private, no-store')
      .type('text/html; charset=utf-8');
    const page = await deps.pages.get(id);
    if (!page) return reply.code(404).send(renderMissingPage());
    return reply.send(
      renderReplyPage(page.text, page.createdAt, Math.max(1, Math.round(deps.pageTtlS / 86400))),
    );
  });
}
