#!/usr/bin/env node
// The bridge's peers for bench/bridge-ack, as cheap as possible: the WeChat API (token, customer
// service send, typing), the orchestrator (every VM is running) and an agent that accepts and
// never replies. Prints `stub listening on <url>`.
import { createServer } from 'node:http';

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const path = (req.url ?? '/').split('?')[0];
    const base = `http://127.0.0.1:${server.address().port}`;
    if (path === '/cgi-bin/stable_token' || path === '/cgi-bin/token') {
      return json(res, 200, { access_token: 'bench-access-token', expires_in: 7200 });
    }
    if (path.startsWith('/cgi-bin/message/custom/')) return json(res, 200, { errcode: 0, errmsg: 'ok' });
    const vm = path.match(/^\/api\/v1\/vms(?:\/([^/]+))?/);
    if (vm) {
      return json(res, 200, {
        user_id: vm[1] ?? 'bench',
        state: 'running',
        agent_url: `${base}/webhook`,
        agent_token: 'bench-agent-token',
      });
    }
    if (path === '/webhook') return json(res, 202, { status: 'accepted' });
    return json(res, 404, { error: 'not found' });
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`stub listening on http://127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
