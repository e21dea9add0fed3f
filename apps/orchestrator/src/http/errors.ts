import { isRedisUnavailable } from '@moltage/core';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { OrchestratorError } from '../errors.js';

/** The one mapping from errors to HTTP replies: `{ code, message }` JSON. */
export function errorHandler(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
  if (err instanceof OrchestratorError) {
    if (err.statusCode >= 500)
      req.log.warn(
        { code: err.code, err: err.message, cause: (err.cause as Error | undefined)?.message },
        'request failed',
      );
    reply.code(err.statusCode).send({ code: err.code, message: err.message, ...err.details });
    return;
  }
  const fe = err as FastifyError;
  if (
    fe.validation ||
    fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
    fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
    (fe.statusCode && fe.statusCode < 500)
  ) {
    reply
      .code(fe.statusCode && fe.statusCode < 500 ? fe.statusCode : 400)
      .send({ code: 'ORCH_BAD_REQUEST', message: err.message });
    return;
  }
  if (isRedisUnavailable(err)) {
    req.log.warn({ err: err.message }, 'request failed: Redis is unreachable');
    reply.code(503).header('retry-after', '5').send({
      code: 'ORCH_STORE_UNAVAILABLE',
      message: 'the VM store (Redis) is unreachable; retry shortly',
    });
    return;
  }
  req.log.error({ err }, 'unexpected error');
  reply.code(500).send({ code: 'ORCH_INTERNAL', message: 'internal error' });
}
