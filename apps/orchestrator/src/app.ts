import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '@moltage/core';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { z } from 'zod';
import { BadRequestError, UnauthorizedError } from './errors.js';
import { errorHandler } from './http/errors.js';
import type { VmManager } from './vm-manager.js';

export interface AppDeps {
  manager: VmManager;
  logger: Logger;
  /** Bearer token for /api/v1; unset = no auth (loopback/dev only). */
  token?: string;
  /** Facts for /health beyond the driver's own (e.g. firecracker binary found). */
  hostFacts?: () => Promise<Record<string, unknown>>;
  registry?: Registry;
}

const createBody = z.object({
  user_id: z.string(),
  callback_url: z.url({ protocol: /^https?$/, error: 'callback_url must be an http(s) URL' }).optional(),
  callback_token: z.string().min(1).max(512).optional(),
});

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7));
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function createMetrics(registry: Registry) {
  const created = new Counter({
    name: 'moltage_vm_starts_total',
    help: 'VM starts by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'moltage_vm_start_seconds',
    help: 'Time from create request to a ready guest',
    buckets: [1, 2, 3, 4, 6, 8, 12, 20, 30, 60],
    registers: [registry],
  });
  return {
    created(durationS: number, ok: boolean) {
      created.inc({ outcome: ok ? 'ok' : 'error' });
      if (ok) duration.observe(durationS);
    },
  };
}

/** The orchestrator's HTTP API (DESIGN.md "Orchestrator API"); never listens by itself. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, bodyLimit: 64 * 1024 });
  const registry = deps.registry ?? new Registry();
  new Gauge({
    name: 'moltage_vms_running',
    help: 'VMs in state running',
    registers: [registry],
    collect: async function (this: Gauge) {
      this.set(await deps.manager.runningCount());
    },
  });

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ code: 'ORCH_NOT_FOUND', message: `no route ${req.method} ${req.url}` });
  });

  app.get('/health', async () => {
    const avail = await deps.manager.driverAvailability();
    return {
      status: avail.ok ? 'ok' : 'degraded',
      driver: avail.ok ? ((await deps.manager.driverName()) ?? null) : null,
      driver_problem: avail.ok ? null : avail.reason,
      details: avail.details ?? {},
      ...(deps.hostFacts ? await deps.hostFacts() : {}),
      vms: await deps.manager.runningCount(),
    };
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  await app.register(
    async (api) => {
      api.addHook('onRequest', async (req) => {
        if (deps.token && !tokenMatches(req.headers.authorization, deps.token)) throw new UnauthorizedError();
      });

      api.post('/vms', async (req) => {
        const parsed = createBody.safeParse(req.body ?? {});
        if (!parsed.success)
          throw new BadRequestError(
            parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
          );
        return deps.manager.create({
          userId: parsed.data.user_id,
          callbackUrl: parsed.data.callback_url,
          callbackToken: parsed.data.callback_token,
        });
      });
      api.get<{ Querystring: { host_id?: string } }>('/vms', async (req) => ({
        vms: await deps.manager.list(req.query.host_id),
      }));
      api.get<{ Params: { user_id: string } }>('/vms/:user_id', async (req) =>
        deps.manager.get(req.params.user_id),
      );
      api.post<{ Params: { user_id: string } }>('/vms/:user_id/touch', async (req) =>
        deps.manager.touch(req.params.user_id),
      );
      api.post<{ Params: { user_id: string } }>('/vms/:user_id/stop', async (req) =>
        deps.manager.stop(req.params.user_id),
      );
      api.delete<{ Params: { user_id: string }; Querystring: { purge?: string; forget?: string } }>(
        '/vms/:user_id',
        async (req, reply) => {
          const { purge, forget } = req.query;
          if (purge !== undefined && purge !== 'true' && purge !== 'false')
            throw new BadRequestError('purge must be true or false');
          if (forget !== undefined && forget !== 'true' && forget !== 'false')
            throw new BadRequestError('forget must be true or false');
          if (purge === 'true' && forget === 'true')
            throw new BadRequestError('purge and forget cannot be combined');
          await deps.manager.delete(req.params.user_id, purge === 'true', forget === 'true');
          reply.code(204);
          return null;
        },
      );
    },
    { prefix: '/api/v1' },
  );

  return app;
}
