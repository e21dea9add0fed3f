#!/usr/bin/env node
// The bridge's peers for bench/bridge-ack, as cheap as possible: the WeChat API (token, customer
// service send, typing), the orchestrator (every VM is running) and an agent that accepts each
// message and answers it at once through the bridge's /callback, with the callback token the
// bridge gave the orchestrator for that user — so the bridge's whole path runs behind the acks:
// dispatch, the agent's reply, the customer-service send, then the user's next message.
// Prints `stub listening on <url>`.
import { createServer, request } from 'node:http';

/** openid → { url, token } from the bridge's POST /api/v1/vms. */
const callbacks = new Map();
/** Customer-service messages the bridge sent (answers delivered), for GET /bench/sent. */
let sent = 0;

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

function answer(msg) {
  const cb = callbacks.get(msg.openid);
  if (!cb) return;
  const body = JSON.stringify({ openid: msg.openid, message_id: msg.message_id, text: 'ok' });
  const req = request(cb.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      authorization: `Bearer ${cb.token}`,
    },
  });
  req.on('response', (res) => res.resume());
  req.on('error', () => {});
  req.end(body);
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const path = (req.url ?? '/').split('?')[0];
    const base = `http://127.0.0.1:${server.address().port}`;
    const body = () => {
      try {
        return JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return {};
      }
    };
    if (path === '/cgi-bin/stable_token' || path === '/cgi-bin/token') {
      return json(res, 200, { access_token: 'bench-access-token', expires_in: 7200 });
    }
    if (path === '/cgi-bin/message/custom/send') sent++;
    if (path.startsWith('/cgi-bin/message/custom/')) return json(res, 200, { errcode: 0, errmsg: 'ok' });
    if (path === '/bench/sent') return json(res, 200, { sent });
    const vm = path.match(/^\/api\/v1\/vms(?:\/([^/]+))?/);
    if (vm) {
      if (req.method === 'POST') {
        const b = body();
        if (b.user_id && b.callback_url && b.callback_token) {
          callbacks.set(b.user_id, { url: b.callback_url, token: b.callback_token });
        }
      }
      return json(res, 200, {
        user_id: vm[1] ?? 'bench',
        state: 'running',
        agent_url: `${base}/webhook`,
        agent_token: 'bench-agent-token',
      });
    }
    if (path === '/webhook') {
      json(res, 202, { status: 'accepted' });
      answer(body());
      return;
    }
    return json(res, 404, { error: 'not found' });
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`stub listening on http://127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
