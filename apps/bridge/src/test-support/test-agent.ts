import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './read-body.js';

/** One message the bridge posted to the agent webhook. */
export interface AgentRequest {
  auth: string | undefined;
  payload: Record<string, unknown> & {
    message_id?: string;
    openid?: string;
    text?: string;
    msg_type?: string;
    callback_url?: string;
    callback_token?: string;
    task?: string;
    metadata?: Record<string, unknown>;
  };
  /** Whether the agent answered 2xx on a live connection (the bridge saw it accept). */
  accepted: boolean;
}

/** How the agent treats one request. */
export interface AgentBehavior {
  /** HTTP status to answer (default 202). */
  status?: number;
  /** Hold the request until `release()` (or until the bridge goes away). */
  hold?: boolean;
  /** Answer after this long. */
  acceptDelayMs?: number;
  /** The reply to post back, or null for none. Default: `收到：<text>`. */
  reply?: string | null;
  /** Post the reply as our plugin does (default) or as the community plugin ({success, result}). */
  style?: 'moltage' | 'community';
  /** Wait before posting the reply. */
  replyDelayMs?: number;
}

export interface TestAgent {
  /** Webhook URL. */
  url: string;
  requests: AgentRequest[];
  /** Decides the behaviour per request (default: accept and reply `收到：<text>`). */
  behavior: (req: AgentRequest) => AgentBehavior;
  /** Bearer tokens accepted; null accepts any. */
  tokens: (() => Set<string>) | null;
  /** Releases held requests (answering them as their behaviour says). */
  release(): void;
  /** Requests in flight per openid right now, and the highest ever seen per openid and overall. */
  inFlight: Map<string, number>;
  maxInFlightPerUser: Map<string, number>;
  maxInFlight: number;
  /** Callbacks posted, with the bridge's answer status. */
  callbacks: { status: number; body: unknown }[];
  close(): Promise<void>;
}

/**
 * An agent for the bridge's tests that follows the bridge → agent contract: accepts POSTed
 * messages with a bearer token (2xx), then posts the reply to the `callback_url` with the token.
 */
export async function startTestAgent(): Promise<TestAgent> {
  let held: (() => void)[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const agent: TestAgent = {
    url: '',
    requests: [],
    behavior: () => ({}),
    tokens: null,
    inFlight: new Map(),
    maxInFlightPerUser: new Map(),
    maxInFlight: 0,
    callbacks: [],
    release: () => {
      const h = held;
      held = [];
      for (const f of h) f();
    },
    close: async () => {},
  };

  const postCallback = async (r: AgentRequest, b: AgentBehavior) => {
    const text = b.reply === undefined ? `收到：${r.payload.text ?? r.payload.task ?? ''}` : b.reply;
    if (text === null) return;
    const url = String(r.payload.callback_url);
    const body =
      b.style === 'community'
        ? { success: true, result: text, metadata: {} }
        : {
            openid: r.payload.openid,
            text,
            message_id: r.payload.message_id,
            token: r.payload.callback_token,
            success: true,
            result: text,
          };
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    agent.callbacks.push({ status: res.status, body: await res.json().catch(() => null) });
  };

  const server: Server = createServer(async (req, res) => {
    const raw = await readBody(req);
    let payload: AgentRequest['payload'] = {};
    try {
      payload = JSON.parse(raw);
    } catch {
      res.writeHead(400).end('bad json');
      return;
    }
    const auth = req.headers.authorization;
    const r: AgentRequest = { auth, payload, accepted: false };
    agent.requests.push(r);
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : '';
    if (agent.tokens && !agent.tokens().has(bearer)) {
      res.writeHead(401).end('bad token');
      return;
    }
    const openid = String(payload.openid ?? '');
    const n = (agent.inFlight.get(openid) ?? 0) + 1;
    agent.inFlight.set(openid, n);
    agent.maxInFlightPerUser.set(openid, Math.max(agent.maxInFlightPerUser.get(openid) ?? 0, n));
    const total = [...agent.inFlight.values()].reduce((a, b) => a + b, 0);
    agent.maxInFlight = Math.max(agent.maxInFlight, total);
    const done = () => agent.inFlight.set(openid, (agent.inFlight.get(openid) ?? 1) - 1);

    const b = agent.behavior(r);
    let gone = false;
    res.on('close', () => {
      if (!res.writableFinished) gone = true;
    });
    const answer = () => {
      done();
      if (gone || res.destroyed) return;
      const status = b.status ?? 202;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: status < 300 ? 'accepted' : 'error' }));
      if (status >= 300) return;
      r.accepted = true;
      const t = setTimeout(() => {
        timers.delete(t);
        postCallback(r, b).catch(() => {});
      }, b.replyDelayMs ?? 0);
      timers.add(t);
    };
    if (b.hold) {
      req.socket.on('close', () => {
        if (!res.writableFinished) gone = true;
      });
      held.push(answer);
    } else if (b.acceptDelayMs) {
      const t = setTimeout(() => {
        timers.delete(t);
        answer();
      }, b.acceptDelayMs);
      timers.add(t);
    } else answer();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  agent.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`;
  agent.close = () =>
    new Promise((r) => {
      for (const t of timers) clearTimeout(t);
      held = [];
      server.closeAllConnections();
      server.close(() => r());
    });
  return agent;
}
