#!/usr/bin/env node
// The baseline of bench/bridge-ack: a bare node:http server doing the bridge's signature check on
// a safe-mode push (msg_signature = sha1 of the sorted token, timestamp, nonce and <Encrypt>,
// plus the 5-minute timestamp window) and answering `success` — no decryption, no queue.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

const token = process.env.WECHAT_TOKEN ?? '';
const ENCRYPT_RE = /<Encrypt><!\[CDATA\[([^\]]*)\]\]><\/Encrypt>/;

function sha1(...parts) {
  return createHash('sha1').update(parts.sort().join('')).digest('hex');
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://x');
    const q = url.searchParams;
    const body = Buffer.concat(chunks).toString('utf8');
    const encrypt = ENCRYPT_RE.exec(body)?.[1] ?? '';
    const ts = Number(q.get('timestamp'));
    const expected = Buffer.from(sha1(token, q.get('timestamp') ?? '', q.get('nonce') ?? '', encrypt));
    const given = Buffer.from(q.get('msg_signature') ?? '');
    const ok =
      encrypt !== '' &&
      Math.abs(Date.now() / 1000 - ts) <= 300 &&
      expected.length === given.length &&
      timingSafeEqual(expected, given);
    res.writeHead(ok ? 200 : 401, { 'content-type': 'text/plain' });
    res.end(ok ? 'success' : 'bad signature');
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`bare listening on http://127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
