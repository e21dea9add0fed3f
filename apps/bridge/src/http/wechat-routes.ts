import {
  checkSignature,
  dedupKey,
  parseMessage,
  WeChatError,
  type WeChatMessage,
  type WXBizMsgCrypt,
} from '@moltage/wechat';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ConsoleJournal } from '../adapters/console-journal.js';
import type { RedisQueue } from '../adapters/queue.js';
import { opensServiceWindow, routeMessage } from '../domain/route-message.js';
import { BridgeError, httpReplyFor } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { PushPressure } from '../push-pressure.js';

/** Pushes larger than this are refused with 400 (WeChat's are a few KiB). */
export const MAX_PUSH_BYTES = 64 * 1024;
/** Pushes whose timestamp is further than this from our clock are refused with 401 (replays). */
export const MAX_CLOCK_SKEW_S = 300;

export interface WeChatRouteDeps {
  token: string;
  crypt: WXBizMsgCrypt | null;
  queue: RedisQueue;
  metrics: Metrics;
  now: () => number;
  /** The console's log (console enabled): records each acked push, off the ack's latency. */
  journal?: ConsoleJournal | undefined;
  /** Counts pushes waiting for their ack, so that queue work steps aside while many do. */
  pressure?: PushPressure | undefined;
}

type Query = Record<string, string | undefined>;

function str(q: Query, name: string): string {
  const v = q[name];
  return typeof v === 'string' ? v : '';
}

function checkTimestamp(timestamp: string, nowMs: number): void {
  if (!/^\d{1,12}$/.test(timestamp))
    throw new BridgeError('BRIDGE_BAD_SIGNATURE', 'timestamp is missing or malformed');
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > MAX_CLOCK_SKEW_S) {
    throw new BridgeError(
      'BRIDGE_STALE_TIMESTAMP',
      'timestamp is more than 5 minutes away from the server clock',
    );
  }
}

function fromWeChatError(err: unknown): never {
  if (err instanceof WeChatError) {
    switch (err.code) {
      case 'WECHAT_BAD_SIGNATURE':
        throw new BridgeError('BRIDGE_BAD_SIGNATURE', 'msg_signature does not match');
      case 'WECHAT_APPID_MISMATCH':
        throw new BridgeError('BRIDGE_BAD_REQUEST', 'message was encrypted for another AppID');
      case 'WECHAT_DECRYPT_FAILED':
        throw new BridgeError('BRIDGE_BAD_REQUEST', 'cannot decrypt the message');
      case 'WECHAT_BAD_XML':
        throw new BridgeError('BRIDGE_BAD_REQUEST', `malformed XML: ${err.message}`);
      default:
        throw new BridgeError('BRIDGE_BAD_REQUEST', err.message);
    }
  }
  throw err;
}

function reasonOf(err: unknown): string {
  if (err instanceof BridgeError) {
    switch (err.code) {
      case 'BRIDGE_BAD_SIGNATURE':
        return 'bad_signature';
      case 'BRIDGE_STALE_TIMESTAMP':
        return 'stale_timestamp';
      case 'BRIDGE_BODY_TOO_LARGE':
        return 'too_large';
      case 'BRIDGE_QUEUE_UNAVAILABLE':
        return 'queue_unavailable';
      case 'BRIDGE_SHUTTING_DOWN':
        return 'shutting_down';
      default:
        return 'bad_request';
    }
  }
  return 'error';
}

/** The message as queued: without `raw` (every XML element again), which nothing downstream needs. */
function compact(msg: WeChatMessage): Omit<WeChatMessage, 'raw'> {
  const { raw: _raw, ...rest } = msg;
  return rest;
}

/**
 * `GET /wechat` (URL verification) and `POST /wechat` (pushes in plaintext, compatible and safe
 * mode). A push is answered with the plain body `success` only after it is queued durably.
 */
export async function wechatRoutes(app: FastifyInstance, deps: WeChatRouteDeps): Promise<void> {
  // WeChat's bodies are XML whatever the content type says; read every body as a string.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_PUSH_BYTES }, (_req, body, done) =>
    done(null, body),
  );

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    let e: unknown = err;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      e = new BridgeError('BRIDGE_BODY_TOO_LARGE', `body is larger than ${MAX_PUSH_BYTES} bytes`);
    } else if (!(err instanceof BridgeError) && typeof err.statusCode === 'number' && err.statusCode < 500) {
      e = new BridgeError('BRIDGE_BAD_REQUEST', err.message);
    }
    if (req.method === 'POST') deps.metrics.pushes.inc({ outcome: reasonOf(e) });
    const { statusCode, body } = httpReplyFor(e);
    if (statusCode >= 500) req.log.error({ err }, 'push handling failed');
    else req.log.info({ code: body.code }, 'push refused');
    void reply.code(statusCode).type('application/json').send(body);
  });

  app.get('/wechat', async (req: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply) => {
    const q = req.query;
    const timestamp = str(q, 'timestamp');
    if (!checkSignature(deps.token, timestamp, str(q, 'nonce'), str(q, 'signature'))) {
      throw new BridgeError('BRIDGE_BAD_SIGNATURE', 'signature does not match');
    }
    checkTimestamp(timestamp, deps.now());
    const echostr = q['echostr'];
    if (typeof echostr !== 'string' || echostr === '')
      throw new BridgeError('BRIDGE_BAD_REQUEST', 'echostr is missing');
    return reply.type('text/plain; charset=utf-8').send(echostr);
  });

  app.post(
    '/wechat',
    async (req: FastifyRequest<{ Querystring: Query; Body: unknown }>, reply: FastifyReply) => {
      deps.pressure?.enter();
      try {
        return await acceptPush(req, reply);
      } finally {
        deps.pressure?.leave();
      }
    },
  );

  async function acceptPush(
    req: FastifyRequest<{ Querystring: Query; Body: unknown }>,
    reply: FastifyReply,
  ): Promise<FastifyReply> {
    const started = process.hrtime.bigint();
    const q = req.query;
    const body = typeof req.body === 'string' ? req.body : '';
    const timestamp = str(q, 'timestamp');
    const nonce = str(q, 'nonce');
    let xml: string;
    if (str(q, 'encrypt_type').toLowerCase() === 'aes') {
      if (!deps.crypt) {
        throw new BridgeError(
          'BRIDGE_SAFE_MODE_UNCONFIGURED',
          'encrypted push received but WECHAT_ENCODING_AES_KEY is not set',
        );
      }
      const msgSignature = str(q, 'msg_signature');
      if (msgSignature === '') throw new BridgeError('BRIDGE_BAD_SIGNATURE', 'msg_signature is missing');
      if (body.trim() === '') throw new BridgeError('BRIDGE_BAD_REQUEST', 'empty body');
      try {
        xml = deps.crypt.decryptPush({ msgSignature, timestamp, nonce }, body);
      } catch (err) {
        fromWeChatError(err);
      }
      checkTimestamp(timestamp, deps.now());
    } else {
      if (!checkSignature(deps.token, timestamp, nonce, str(q, 'signature'))) {
        throw new BridgeError('BRIDGE_BAD_SIGNATURE', 'signature does not match');
      }
      checkTimestamp(timestamp, deps.now());
      if (body.trim() === '') throw new BridgeError('BRIDGE_BAD_REQUEST', 'empty body');
      xml = body;
    }
    let msg: WeChatMessage;
    try {
      msg = parseMessage(xml);
    } catch (err) {
      fromWeChatError(err);
    }

    const key = dedupKey(msg);
    const window =
      msg.msgType === 'event' && msg.event === 'unsubscribe'
        ? 'close'
        : opensServiceWindow(msg)
          ? 'open'
          : null;
    let queued: boolean;
    try {
      queued = await deps.queue.enqueue(
        msg.fromUserName,
        {
          eid: `m:${key}`,
          kind: 'push',
          data: JSON.stringify(compact(msg)),
          at: deps.now(),
          answeredByBridge: routeMessage(msg).kind !== 'agent',
        },
        { dedupKey: key, window },
      );
    } catch (err) {
      throw new BridgeError('BRIDGE_QUEUE_UNAVAILABLE', 'queue unavailable, retry later', { cause: err });
    }
    deps.journal?.push(msg, `m:${key}`, deps.now(), !queued);
    deps.metrics.pushes.inc({ outcome: queued ? 'queued' : 'duplicate' });
    if (!queued) deps.metrics.dedupHits.inc();
    deps.metrics.acks.inc();
    deps.metrics.ackSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    req.log.debug({ openid: msg.fromUserName, msgType: msg.msgType, duplicate: !queued }, 'push acked');
    return reply.type('text/plain; charset=utf-8').send('success');
  }
}
