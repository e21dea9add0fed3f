import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkBearer } from './auth.js';
import type { ChannelDefaults } from './config.js';
import { CHANNEL_ID, HEALTH_PATH, MAX_BODY_BYTES, PLUGIN_ID, WEBHOOK_PATH } from './constants.js';
import { errorMessage, PayloadError, PluginError } from './errors.js';
import type { PluginLogger } from './logger.js';
import { type InboundMessage, parseWebhookPayload } from './payload.js';

export interface WebhookServerDeps {
  /** The bearer token every POST /webhook must carry. */
  authToken: string;
  logger: PluginLogger;
  /** Current `channels.moltage.config` (fallback callback URL and token). */
  channelDefaults: () => ChannelDefaults;
  /** Runs after the 202 went out; a rejection is logged, never surfaces to the client. */
  onMessage: (msg: InboundMessage) => Promise<void>;
  maxBodyBytes?: number;
  /** How many recent message ids are remembered to drop re-sent duplicates. */
  dedupeWindow?: number;
}

export interface WebhookServer {
  readonly server: Server;
  listen(port: number, host: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      reject(
        new PluginError('OCP_PAYLOAD_TOO_LARGE', `body is larger than ${maxBytes} bytes`, {
          statusCode: 413,
        }),
      );
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        failed = true;
        reject(
          new PluginError('OCP_PAYLOAD_TOO_LARGE', `body is larger than ${maxBytes} bytes`, {
            statusCode: 413,
          }),
        );
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!failed) {
        failed = true;
        reject(err);
      }
    });
  });
}

/** Remembers the last `capacity` keys; `seen` answers whether a key was already there. */
class RecentKeys {
  private readonly keys = new Set<string>();
  constructor(private readonly capacity: number) {}
  seen(key: string): boolean {
    if (this.keys.has(key)) return true;
    this.keys.add(key);
    if (this.keys.size > this.capacity) {
      const oldest = this.keys.values().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
    return false;
  }
}

/**
 * The webhook HTTP server: `POST /webhook` (bearer token, JSON body, 202 at once, the message
 * handed to `onMessage` afterwards) and `GET /health` for readiness probes.
 */
export function createWebhookServer(deps: WebhookServerDeps): WebhookServer {
  const maxBodyBytes = deps.maxBodyBytes ?? MAX_BODY_BYTES;
  const recent = new RecentKeys(deps.dedupeWindow ?? 2000);
  const sockets = new Set<import('node:net').Socket>();

  async function handleWebhook(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const auth = checkBearer(req.headers.authorization, deps.authToken);
    if (!auth.ok) {
      req.resume();
      sendJson(res, 401, { error: 'unauthorized', reason: auth.reason }, { 'www-authenticate': 'Bearer' });
      return;
    }
    const contentType = req.headers['content-type'];
    if (contentType !== undefined && !/^application\/([\w.+-]+\+)?json\b/i.test(contentType)) {
      req.resume();
      sendJson(res, 415, { error: 'unsupported_media_type', reason: 'send the body as application/json' });
      return;
    }
    let raw: Buffer;
    try {
      raw = await readBody(req, maxBodyBytes);
    } catch (err) {
      const status = err instanceof PluginError && err.statusCode ? err.statusCode : 400;
      sendJson(res, status, {
        error: status === 413 ? 'payload_too_large' : 'bad_request',
        reason: errorMessage(err),
      });
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      sendJson(res, 400, { error: 'bad_request', reason: 'body is not valid JSON' });
      return;
    }
    let msg: InboundMessage;
    try {
      msg = parseWebhookPayload(body, deps.channelDefaults());
    } catch (err) {
      if (err instanceof PayloadError) {
        sendJson(res, 400, { error: 'bad_request', reason: err.message });
        return;
      }
      throw err;
    }
    const key = `${msg.openid}\u0000${msg.messageId}`;
    if (recent.seen(key)) {
      deps.logger.info(`webhook: duplicate message ${msg.messageId} for openid ${msg.openid} ignored`);
      sendJson(res, 202, { status: 'duplicate', message_id: msg.messageId });
      return;
    }
    sendJson(res, 202, { status: 'accepted', message_id: msg.messageId });
    deps.logger.info(`webhook: accepted ${msg.msgType} message ${msg.messageId} from openid ${msg.openid}`);
    setImmediate(() => {
      deps.onMessage(msg).catch((err) => {
        deps.logger.error(
          `webhook: message ${msg.messageId} for openid ${msg.openid} failed: ${errorMessage(err)}`,
        );
      });
    });
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    const done = (p: Promise<void>) =>
      p.catch((err) => {
        deps.logger.error(`webhook server: ${req.method} ${path} failed: ${errorMessage(err)}`);
        if (!res.headersSent) sendJson(res, 500, { error: 'internal_error' });
        else res.destroy();
      });
    if (path === WEBHOOK_PATH) {
      if (req.method !== 'POST') {
        req.resume();
        sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'POST' });
        return;
      }
      done(handleWebhook(req, res));
      return;
    }
    if (path === HEALTH_PATH) {
      req.resume();
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
        return;
      }
      sendJson(res, 200, { status: 'ok', plugin: PLUGIN_ID, channel: CHANNEL_ID });
      return;
    }
    req.resume();
    sendJson(res, 404, { error: 'not_found' });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 15_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  return {
    server,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => {
          server.off('listening', onListening);
          reject(
            new PluginError(
              'OCP_LISTEN_FAILED',
              `webhook server could not listen on ${host}:${port}: ${err.message}`,
              {
                cause: err,
              },
            ),
          );
        };
        const onListening = () => {
          server.off('error', onError);
          resolve(server.address() as AddressInfo);
        };
        server.once('error', onError);
        server.once('listening', onListening);
        server.listen(port, host);
      });
    },
    close() {
      return new Promise((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.close(() => resolve());
        server.closeIdleConnections();
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
