import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FaultDecision, FaultEndpoint } from '../domain/faults.js';
import type { Simulator } from '../simulator.js';

/** Shared by the route plugins: aborted when the server starts closing. */
export interface RouteContext {
  sim: Simulator;
  closing: AbortSignal;
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Takes the armed faults of `endpoint` for this call and waits out the added latency. For a
 * `timeout` fault the reply is taken over and never answered: the connection is dropped after
 * `sim.hangMaxMs` or when the server closes.
 */
export async function takeFaults(
  ctx: RouteContext,
  endpoint: FaultEndpoint,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FaultDecision> {
  const decision = ctx.sim.faults.take(endpoint);
  if (decision.latencyMs > 0) await sleep(decision.latencyMs, ctx.closing);
  if (decision.action?.kind === 'timeout') {
    reply.hijack();
    const socket = req.raw.socket;
    const drop = () => {
      clearTimeout(timer);
      ctx.closing.removeEventListener('abort', drop);
      socket.destroy();
    };
    const timer = setTimeout(drop, ctx.sim.hangMaxMs);
    timer.unref();
    ctx.closing.addEventListener('abort', drop, { once: true });
    socket.once('close', () => {
      clearTimeout(timer);
      ctx.closing.removeEventListener('abort', drop);
    });
  }
  return decision;
}
