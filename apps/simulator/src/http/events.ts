import type { FastifyInstance } from 'fastify';
import type { SimEvent } from '../domain/records.js';
import type { RouteContext } from './faults.js';

const HEARTBEAT_MS = 15_000;

/**
 * `GET /sim/events[?openid=…]`: Server-Sent Events for the chat page (and anyone watching).
 * Each change arrives as `event: <type>` with the JSON of {@link SimEvent}. With `openid`,
 * only that user's events plus `account` and `reset`.
 */
export function registerEventStream(app: FastifyInstance, ctx: RouteContext): void {
  const { sim } = ctx;
  sim.events.setMaxListeners(0);

  app.get('/sim/events', (req, reply) => {
    const openid = (req.query as { openid?: unknown }).openid;
    const filter = typeof openid === 'string' && openid !== '' ? openid : null;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const onEvent = (e: SimEvent) => {
      if (filter && 'openid' in e && e.openid !== filter) return;
      res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    };
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    const stop = () => {
      clearInterval(heartbeat);
      sim.events.off('event', onEvent);
      ctx.closing.removeEventListener('abort', end);
    };
    const end = () => {
      stop();
      res.end();
    };
    sim.events.on('event', onEvent);
    ctx.closing.addEventListener('abort', end, { once: true });
    req.raw.socket.once('close', stop);
  });
}
