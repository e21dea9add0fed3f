import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { checkSignature, parseXml, WXBizMsgCrypt } from '@moltage/wechat';

/** One request the fake bridge received, with what it could verify about it. */
export interface BridgeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: string;
  /** `signature` checked against the token. */
  signatureOk: boolean;
  /** `msg_signature` checked and the body decrypted (compatible/safe mode); null in plaintext. */
  decrypted: string | null;
  /** The message fields: decrypted when encrypted, else parsed from the body. Null for GET. */
  fields: Record<string, string> | null;
  /** Fields of the raw body as sent. */
  outer: Record<string, string> | null;
}

export type BridgeAnswer = { status?: number; body?: string; delayMs?: number; hang?: boolean };

export interface FakeBridge {
  url: string;
  requests: BridgeRequest[];
  /** Decides each answer; default: verify GET echostr, answer `success` to POST. */
  answer: (req: BridgeRequest, n: number) => BridgeAnswer;
  crypt: WXBizMsgCrypt | null;
  close(): Promise<void>;
}

/**
 * A tiny HTTP server on 127.0.0.1 standing in for the bridge in the simulator's own tests: it
 * checks signatures with @moltage/wechat, decrypts encrypted pushes and answers as told.
 */
export async function startFakeBridge(account: {
  token: string;
  appId: string;
  encodingAesKey?: string;
}): Promise<FakeBridge> {
  const crypt = account.encodingAesKey
    ? new WXBizMsgCrypt({
        token: account.token,
        encodingAesKey: account.encodingAesKey,
        appId: account.appId,
      })
    : null;
  const timers = new Set<NodeJS.Timeout>();
  const bridge: FakeBridge = {
    url: '',
    requests: [],
    crypt,
    answer: (req) => {
      if (req.method === 'GET') {
        return req.signatureOk
          ? { body: req.query['echostr'] ?? '' }
          : { status: 401, body: 'bad signature' };
      }
      return { body: 'success' };
    },
    close: async () => {},
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const query = Object.fromEntries(url.searchParams);
      const body = Buffer.concat(chunks).toString('utf8');
      const signatureOk = checkSignature(
        account.token,
        query['timestamp'] ?? '',
        query['nonce'] ?? '',
        query['signature'] ?? '',
      );
      let outer: Record<string, string> | null = null;
      let decrypted: string | null = null;
      let fields: Record<string, string> | null = null;
      if (req.method === 'POST') {
        try {
          outer = parseXml(body);
          fields = outer;
          if (query['encrypt_type'] === 'aes' && crypt) {
            decrypted = crypt.decryptPush(
              {
                msgSignature: query['msg_signature'] ?? '',
                timestamp: query['timestamp'] ?? '',
                nonce: query['nonce'] ?? '',
              },
              body,
            );
            fields = parseXml(decrypted);
          }
        } catch {
          fields = null;
        }
      }
      const record: BridgeRequest = {
        method: req.method ?? '',
        path: url.pathname,
        query,
        body,
        signatureOk,
        decrypted,
        fields,
        outer,
      };
      bridge.requests.push(record);
      const a = bridge.answer(record, bridge.requests.length);
      if (a.hang) return;
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(a.status ?? 200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(a.body ?? '');
      };
      if (a.delayMs) {
        const t = setTimeout(() => {
          timers.delete(t);
          send();
        }, a.delayMs);
        timers.add(t);
      } else {
        send();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('fake bridge: no address');
  bridge.url = `http://127.0.0.1:${addr.port}/wechat`;
  bridge.close = () =>
    new Promise<void>((resolve) => {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return bridge;
}
