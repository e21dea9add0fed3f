import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface StatusDeps {
  registry: Registry;
  /** Facts for `GET /health`; `ok: false` answers 503. */
  health(): Promise<{ ok: boolean } & Record<string, unknown>>;
}

/**
 * The small status port (METRICS_ADDR): `GET /health` (JSON, 200 or 503) and `GET /metrics`
 * (Prometheus text). Meant for loopback or a monitoring network, not for users.
 */
export function createStatusServer(deps: StatusDeps): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const json = (status: number, body: unknown) =>
      send(status, 'application/json', `${JSON.stringify(body)}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      json(405, { code: 'SSHGW_METHOD_NOT_ALLOWED', message: `${req.method} is not supported` });
      return;
    }
    if (path === '/health') {
      deps.health().then(
        ({ ok, ...facts }) => json(ok ? 200 : 503, { status: ok ? 'ok' : 'degraded', ...facts }),
        (err: Error) => json(503, { status: 'degraded', error: err.message }),
      );
      return;
    }
    if (path === '/metrics') {
      deps.registry.metrics().then(
        (text) => send(200, deps.registry.contentType, text),
        (err: Error) => json(500, { code: 'SSHGW_METRICS', message: err.message }),
      );
      return;
    }
    json(404, { code: 'SSHGW_NOT_FOUND', message: `no route ${path}` });
  });
}
