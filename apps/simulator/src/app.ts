import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyServerOptions,
} from 'fastify';
import type { Logger } from 'pino';
import { openAiError } from './domain/fake-llm.js';
import { SimError } from './errors.js';
import { registerChatPage } from './http/chat-page.js';
import { registerFakeLlm } from './http/fake-llm.js';
import type { RouteContext } from './http/faults.js';
import { registerSimApi } from './http/sim-api.js';
import { registerWeChatApi } from './http/wechat-api.js';
import { Simulator, type SimulatorOptions } from './simulator.js';

export interface BuildSimulatorOptions extends SimulatorOptions {
  /** pino logger for request logs; omitted → no logging. */
  logger?: Logger;
  /**
   * The URL the simulator is reachable under, used in media URLs of pushes. Default: the
   * address the server listens on.
   */
  publicUrl?: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The simulator's state: users, inboxes, pushes, faults, clock, account. */
    sim: Simulator;
  }
}

/** Strips query values that carry credentials from a URL before it is logged. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:access_token|secret|signature|msg_signature|echostr)=)[^&]*/gi, '$1[redacted]');
}

/**
 * Builds the simulator's HTTP app: the WeChat API under `/cgi-bin/…`, the fake LLM under
 * `/v1/…`, the JSON API under `/sim/…` and the chat page at `/`. Never listens and never reads
 * the environment; `app.sim` is the state handle.
 */
export function buildSimulator(opts: BuildSimulatorOptions = {}): FastifyInstance {
  const fastifyOpts: FastifyServerOptions = {
    forceCloseConnections: true,
    bodyLimit: 4 * 1024 * 1024,
  };
  const app: FastifyInstance = opts.logger
    ? Fastify({
        ...fastifyOpts,
        loggerInstance: opts.logger.child(
          { component: 'http' },
          {
            serializers: {
              req: (req: { method: string; url: string }) => ({
                method: req.method,
                url: redactUrl(req.url),
              }),
            },
          },
        ) as unknown as FastifyBaseLogger,
      })
    : Fastify(fastifyOpts);

  const baseUrl = () => {
    if (opts.publicUrl) return opts.publicUrl;
    const addr = app.server.address();
    if (addr && typeof addr === 'object') {
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${addr.port}`;
    }
    return 'http://127.0.0.1';
  };
  const sim = new Simulator(opts, baseUrl);
  const closing = new AbortController();
  const ctx: RouteContext = { sim, closing: closing.signal };
  app.decorate('sim', sim);

  app.addHook('preClose', async () => {
    closing.abort();
    sim.close();
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const isLlm = req.url.startsWith('/v1/');
    if (err instanceof SimError) {
      return reply.code(err.statusCode).send({
        error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
      });
    }
    const status =
      typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500
        ? err.statusCode
        : 500;
    if (status === 500) req.log.error({ err }, 'unexpected error');
    const message = status === 500 ? 'internal error' : err.message;
    if (isLlm) return reply.code(status).send(openAiError(status, message));
    return reply
      .code(status)
      .send({ error: { code: status === 500 ? 'SIM_INTERNAL' : (err.code ?? 'SIM_BAD_REQUEST'), message } });
  });
  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/v1/')) {
      return reply
        .code(404)
        .send(openAiError(404, `Unknown request URL: ${req.method} ${req.url.split('?')[0]}.`));
    }
    return reply
      .code(404)
      .send({ error: { code: 'SIM_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });

  registerWeChatApi(app, ctx);
  registerSimApi(app, ctx);
  registerFakeLlm(app, ctx);
  registerChatPage(app);
  return app;
}
