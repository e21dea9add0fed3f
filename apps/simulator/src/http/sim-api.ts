import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import {
  FAULT_ENDPOINTS,
  type FaultEndpoint,
  isFaultEndpoint,
  WECHAT_FAULT_ENDPOINTS,
} from '../domain/faults.js';
import { userMessageSchema } from '../domain/inbound.js';
import type { PushRecord } from '../domain/records.js';
import { SimNotFoundError, SimValidationError } from '../errors.js';
import { registerEventStream } from './events.js';
import type { RouteContext } from './faults.js';

/** A 1×1 PNG served for every media id (the PicUrl of simulated image messages). */
const PIXEL_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkaPhfDwAE/wH+qYqkWQAAAABJRU5ErkJggg==',
  'base64',
);

const MAX_WAIT_MS = 120_000;

/** Parses `value` with `schema`, or throws SIM_VALIDATION naming every problem. */
export function parseOr400<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.join('.') || what}: ${i.message}`);
  throw new SimValidationError(`invalid ${what}: ${issues.join('; ')}`, r.error.issues);
}

const waitQuery = z.object({
  wait: z.enum(['true', 'false', '1', '0']).optional(),
  timeoutMs: z.coerce.number().int().min(0).max(MAX_WAIT_MS).optional(),
});
const waitField = z.object({ wait: z.boolean().optional() });
const openidParams = z.object({ openid: z.string().min(1).max(64) });
const createUserBody = z
  .object({
    openid: z.string().optional(),
    nickname: z.string().optional(),
    /** Also follow right away (pushes a subscribe event). */
    follow: z.boolean().optional(),
    qrscene: z.string().optional(),
    wait: z.boolean().optional(),
  })
  .strict();
const followBody = z.object({ qrscene: z.string().optional(), wait: z.boolean().optional() }).strict();
const unfollowBody = z.object({ wait: z.boolean().optional() }).strict();
const inboxQuery = z.object({
  min: z.coerce.number().int().min(0).max(100_000).optional(),
  timeoutMs: z.coerce.number().int().min(0).max(MAX_WAIT_MS).optional(),
});
const faultPatch = z
  .object({
    latencyMs: z.number().int().min(0).max(600_000).optional(),
    errcode: z.number().int().min(-1).max(9_999_999).nullable().optional(),
    errcodeTimes: z.number().int().min(0).max(1_000_000).optional(),
    http500Times: z.number().int().min(0).max(1_000_000).optional(),
    timeoutTimes: z.number().int().min(0).max(1_000_000).optional(),
  })
  .strict();
const clockAdvance = z
  .object({
    ms: z.number().min(0).optional(),
    seconds: z.number().min(0).optional(),
    minutes: z.number().min(0).optional(),
    hours: z.number().min(0).optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'give ms, seconds, minutes or hours');
const clockSet = z.object({ offsetMs: z.number().min(0) }).strict();
const verifyBody = z.object({ badSignature: z.boolean().optional() }).strict();
const llmConfig = z.object({ apiKey: z.string().min(1).max(512).nullable() }).strict();

function wantsWait(queryWait: string | undefined, bodyWait: boolean | undefined): boolean {
  if (bodyWait !== undefined) return bodyWait;
  if (queryWait !== undefined) return queryWait === 'true' || queryWait === '1';
  return true;
}

/** A push that finished answers 200; one still under way (wait=false) answers 202. */
function sendPush(reply: FastifyReply, push: PushRecord) {
  return reply.code(push.status === 'pending' ? 202 : 200).send(push);
}

function faultEndpoint(name: string): FaultEndpoint {
  if (!isFaultEndpoint(name)) {
    throw new SimNotFoundError(
      'SIM_NOT_FOUND',
      `no fault endpoint ${name}; use one of ${FAULT_ENDPOINTS.join(', ')}`,
    );
  }
  return name;
}

/** The JSON API tests and the chat page use to play the users and steer the simulator. */
export function registerSimApi(app: FastifyInstance, ctx: RouteContext): void {
  const { sim } = ctx;

  app.get('/sim/health', async () => ({ ok: true }));

  app.get('/sim/account', async () => sim.publicAccount());
  app.patch('/sim/account', async (req) => sim.updateAccount(req.body ?? {}));

  app.get('/sim/users', async () => ({ users: sim.users() }));
  app.post('/sim/users', async (req, reply) => {
    const b = parseOr400(createUserBody, req.body, 'user');
    if (b.qrscene !== undefined && !b.follow) throw new SimValidationError('qrscene needs follow: true');
    const user = sim.createUser({
      ...(b.openid !== undefined ? { openid: b.openid } : {}),
      ...(b.nickname !== undefined ? { nickname: b.nickname } : {}),
    });
    if (!b.follow) return reply.code(201).send({ user });
    const push = await sim.follow(user.openid, {
      ...(b.qrscene !== undefined ? { qrscene: b.qrscene } : {}),
      wait: b.wait ?? true,
    });
    return reply.code(201).send({ user: sim.user(user.openid), push });
  });
  app.get('/sim/users/:openid', async (req) => {
    const { openid } = parseOr400(openidParams, req.params, 'path');
    return { user: sim.user(openid), window: sim.windowOf(openid) };
  });
  app.post('/sim/users/:openid/follow', async (req, reply) => {
    const { openid } = parseOr400(openidParams, req.params, 'path');
    const b = parseOr400(followBody, req.body, 'body');
    const q = parseOr400(waitQuery, req.query, 'query');
    const push = await sim.follow(openid, {
      ...(b.qrscene !== undefined ? { qrscene: b.qrscene } : {}),
      wait: wantsWait(q.wait, b.wait),
    });
    return sendPush(reply, push);
  });
  app.post('/sim/users/:openid/unfollow', async (req, reply) => {
    const { openid } = parseOr400(openidParams, req.params, 'path');
    const b = parseOr400(unfollowBody, req.body, 'body');
    const q = parseOr400(waitQuery, req.query, 'query');
    return sendPush(reply, await sim.unfollow(openid, { wait: wantsWait(q.wait, b.wait) }));
  });
  app.post('/sim/users/:openid/messages', async (req, reply) => {
    const { openid } = parseOr400(openidParams, req.params, 'path');
    const q = parseOr400(waitQuery, req.query, 'query');
    const raw = (req.body ?? {}) as Record<string, unknown>;
    const { wait } = parseOr400(waitField, raw, 'body');
    const { wait: _omit, ...rest } = typeof raw === 'object' && raw !== null ? raw : {};
    const message = parseOr400(userMessageSchema, rest, 'message');
    return sendPush(reply, await sim.send(openid, message, { wait: wantsWait(q.wait, wait) }));
  });
  app.get('/sim/users/:openid/inbox', async (req) => {
    const { openid } = parseOr400(openidParams, req.params, 'path');
    const q = parseOr400(inboxQuery, req.query, 'query');
    if (q.min === undefined) return { entries: sim.inbox(openid), complete: true };
    return sim.waitForInbox(openid, q.min, q.timeoutMs ?? 0);
  });

  app.get('/sim/pushes', async (req) => {
    const q = parseOr400(z.object({ openid: z.string().optional() }), req.query, 'query');
    return { pushes: sim.pushes(q.openid !== undefined ? { openid: q.openid } : {}) };
  });
  app.get('/sim/pushes/:id', async (req) => {
    const { id } = parseOr400(z.object({ id: z.string().min(1).max(32) }), req.params, 'path');
    const q = parseOr400(waitQuery, req.query, 'query');
    if (q.wait === 'true' || q.wait === '1') return sim.waitForPush(id, q.timeoutMs ?? 30_000);
    return sim.push(id);
  });
  app.post('/sim/verify', async (req) => sim.verifyUrl(parseOr400(verifyBody, req.body, 'body')));

  app.get('/sim/calls', async (req) => {
    const q = parseOr400(z.object({ endpoint: z.string().optional() }), req.query, 'query');
    return { calls: sim.calls(q.endpoint !== undefined ? { endpoint: q.endpoint } : {}) };
  });
  app.delete('/sim/calls', async (_req, reply) => {
    sim.clearCalls();
    return reply.code(204).send();
  });

  app.get('/sim/faults', async () => ({ faults: sim.faults.all() }));
  app.put('/sim/faults/:endpoint', async (req) => {
    const endpoint = faultEndpoint((req.params as { endpoint: string }).endpoint);
    const patch = parseOr400(faultPatch, req.body, 'fault');
    const wantsErrcode =
      (patch.errcode !== undefined && patch.errcode !== null) || (patch.errcodeTimes ?? 0) > 0;
    if (wantsErrcode && !WECHAT_FAULT_ENDPOINTS.includes(endpoint)) {
      throw new SimValidationError(
        `errcode faults apply to WeChat endpoints only (${WECHAT_FAULT_ENDPOINTS.join(', ')})`,
      );
    }
    return { endpoint, faults: sim.faults.set(endpoint, patch) };
  });
  app.delete('/sim/faults', async (_req, reply) => {
    sim.faults.clear();
    return reply.code(204).send();
  });
  app.delete('/sim/faults/:endpoint', async (req, reply) => {
    sim.faults.clear(faultEndpoint((req.params as { endpoint: string }).endpoint));
    return reply.code(204).send();
  });
  app.post('/sim/tokens/expire', async () => ({ expired: sim.tokens.expireAll() }));

  const clockView = () => ({ now: new Date(sim.clock.now()).toISOString(), offsetMs: sim.clock.offsetMs });
  app.get('/sim/clock', async () => clockView());
  app.post('/sim/clock/advance', async (req) => {
    const b = parseOr400(clockAdvance, req.body, 'clock');
    const ms = (b.ms ?? 0) + (b.seconds ?? 0) * 1000 + (b.minutes ?? 0) * 60_000 + (b.hours ?? 0) * 3_600_000;
    if (!Number.isFinite(ms)) throw new SimValidationError('clock advance is too large');
    sim.clock.advance(ms);
    return clockView();
  });
  app.put('/sim/clock', async (req) => {
    sim.clock.setOffset(parseOr400(clockSet, req.body, 'clock').offsetMs);
    return clockView();
  });

  app.post('/sim/reset', async (_req, reply) => {
    sim.reset();
    return reply.code(204).send();
  });

  app.get('/sim/llm/requests', async () => ({ requests: sim.llmRequests() }));
  app.delete('/sim/llm/requests', async (_req, reply) => {
    sim.clearLlmRequests();
    return reply.code(204).send();
  });
  app.put('/sim/llm', async (req) => {
    sim.setLlmApiKey(parseOr400(llmConfig, req.body, 'llm config').apiKey);
    return { apiKeyRequired: sim.llmApiKey !== undefined };
  });

  app.get('/sim/media/:mediaId', async (_req, reply) =>
    reply.type('image/png').header('cache-control', 'max-age=86400').send(PIXEL_PNG),
  );

  registerEventStream(app, ctx);
}
