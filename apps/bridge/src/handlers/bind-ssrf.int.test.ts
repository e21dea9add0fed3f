import { lookup } from 'node:dns/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import type { UserRecord } from '../adapters/user-store.js';
import { boundUnreachable, T } from '../domain/texts.js';
import { type Harness, startHarness } from '../test-support/harness.js';

// SSRF through `bind` with BIND_ALLOW_PRIVATE=false (the default): every spelling of a
// loopback, private, link-local, metadata or reserved address is refused before any connection.
// Only loopback is ever contacted by this file: private and public addresses appear in URLs the
// bridge must refuse without connecting; loopback forms point at a canary server that counts
// connections.

let h: Harness | undefined;
let canary: { server: Server; port: number; hits: string[]; sockets: Socket[] } | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  if (canary) {
    for (const s of canary.sockets) s.destroy();
    await new Promise((r) => canary?.server.close(r));
    canary = undefined;
  }
});

async function startCanary(handler?: (url: string) => { status: number; location?: string }) {
  const hits: string[] = [];
  const sockets: Socket[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    const a = handler?.(req.url ?? '/') ?? { status: 200 };
    res.writeHead(a.status, a.location ? { location: a.location } : {}).end();
  });
  server.on('connection', (s) => {
    sockets.push(s);
    hits.push('connect');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, hits, sockets };
}

async function user(h: Harness, openid: string): Promise<UserRecord> {
  return JSON.parse((await h.r.get(`user:${openid}`)) as string) as UserRecord;
}

async function ask(h: Harness, openid: string, text: string): Promise<string> {
  const before = (await h.client.inbox(openid)).length;
  await h.client.sendText(openid, text);
  const texts = await h.waitTexts(openid, before + 1);
  return texts[before] as string;
}

describe('bind refuses SSRF targets (BIND_ALLOW_PRIVATE=false)', () => {
  it('every spelling of loopback, private, link-local, metadata, CGNAT and reserved addresses, before connecting', async () => {
    canary = await startCanary();
    h = await startHarness({ env: { BIND_ALLOW_PRIVATE: 'false' } });
    const u = await h.newUser();
    const p = canary.port;
    // Loopback spellings, all pointing at the canary's port.
    const loopback = [
      `http://2130706433:${p}/`, // decimal
      `http://017700000001:${p}/`, // octal, one number
      `http://0177.0.0.1:${p}/`, // octal dotted
      `http://0x7f.0x0.0x0.0x1:${p}/`, // hex dotted
      `http://0x7f.1:${p}/`, // hex, short form
      `http://127.1:${p}/`, // short form
      `http://127.000.000.001:${p}/`,
      `http://0:${p}/`, // 0.0.0.0 reaches loopback on Linux
      `http://0.0.0.0:${p}/`,
      `http://[::]:${p}/`,
      `http://[::1]:${p}/`,
      `http://[0:0:0:0:0:0:0:1]:${p}/`,
      `http://[::ffff:127.0.0.1]:${p}/`, // IPv4-mapped
      `http://[::ffff:7f00:1]:${p}/`, // IPv4-mapped, hex
      `http://[0:0:0:0:0:ffff:127.0.0.1]:${p}/`,
      `http://[::127.0.0.1]:${p}/`, // IPv4-compatible
      `http://[64:ff9b::127.0.0.1]:${p}/`, // NAT64
      `http://[2002:7f00:1::]:${p}/`, // 6to4
      `http://LOCALHOST:${p}/`,
      `http://localhost:${p}/webhook?x=1#frag`,
      `https://127.0.0.1:${p}/`,
      `http://127.0.0.1:${p}#@public.example.com/`,
      `http://127.0.0.1:${p}\\@public.example.com/`,
      `http://%31%32%37.0.0.1:${p}/`, // percent-encoded host
      `http://１２７.０.０.１:${p}/`, // full-width digits (IDNA maps them)
    ];
    // The machine's own name when /etc/hosts maps it to loopback (no DNS query leaves the host).
    const own = hostname();
    const ownAddrs = await lookup(own, { all: true }).catch(() => []);
    if (ownAddrs.length > 0 && ownAddrs.every((a) => a.address === '127.0.0.1' || a.address === '::1'))
      loopback.push(`http://${own}:${p}/`);
    // Private, link-local, metadata, CGNAT and reserved: refused without any connection attempt.
    const elsewhere = [
      'http://10.0.0.1/',
      'http://167772161/', // 10.0.0.1 in decimal
      'http://012.0.0.1/', // 10.0.0.1 octal
      'http://0xa000001/', // 10.0.0.1 hex
      'http://172.16.0.1/',
      'http://172.31.255.254/',
      'http://192.168.1.1/',
      'http://0xc0.0xa8.1.1/',
      'http://169.254.169.254/latest/meta-data/',
      'http://2852039166/', // 169.254.169.254 decimal
      'http://[::ffff:169.254.169.254]/',
      'http://[::ffff:a9fe:a9fe]/',
      'http://[fd00:ec2::254]/',
      'http://100.100.100.200/',
      'http://100.64.0.1/',
      'http://[fe80::1]/',
      'http://[fe80::1%25eth0]/',
      'http://[fc00::1]/',
      'http://[fd12:3456::1]/',
      'http://[::ffff:10.0.0.1]/',
      'http://[::ffff:192.168.0.1]/',
      'http://[64:ff9b::10.0.0.1]/',
      'http://[64:ff9b:1::1]/',
      'http://[2002:a00:1::]/',
      'http://[ff02::1]/',
      'http://239.255.255.250/',
      'http://255.255.255.255/',
      'http://240.0.0.1/',
      'http://198.18.0.1/',
      'http://192.0.0.8/',
      'http://[2001:db8::1]/',
      'http://[100::1]/',
    ];
    const answers: Record<string, string> = {};
    for (const url of [...loopback, ...elsewhere]) {
      answers[url] = await ask(h, u, `bind ${url} secret-ssrf-token`);
    }
    const notForbidden = Object.entries(answers).filter(
      ([, a]) => a !== T.bindForbidden && a !== T.bindInvalid,
    );
    expect(notForbidden).toEqual([]);
    // Forms that are addresses must be refused as addresses, not merely as unparsable URLs.
    for (const url of [
      `http://2130706433:${p}/`,
      `http://[::ffff:7f00:1]:${p}/`,
      'http://[fd00:ec2::254]/',
      'http://167772161/',
    ]) {
      expect(answers[url]).toBe(T.bindForbidden);
    }
    // An http URL that WHATWG URL cannot parse (an IPv6 zone id) is a malformed address, not a
    // wrong scheme.
    expect(answers['http://[fe80::1%25eth0]/']).toBe(T.bindInvalid);
    // Credentials in the URL are refused as invalid.
    expect(await ask(h, u, `bind http://public.example.com@127.0.0.1:${p}/ t`)).toBe(T.bindInvalid);

    await h.idle();
    expect((await user(h, u)).binding).toBeNull();
    expect(canary.hits).toEqual([]);
    expect(h.agent.requests).toHaveLength(0);
    expect(h.logs()).not.toContain('secret-ssrf-token');
  }, 120_000);
});

describe('redirects from an agent are never followed', () => {
  it('a bound agent answering 30x to a loopback URL is not followed; the user is told it is unreachable', async () => {
    // The bound instance itself must be on loopback here, so this test allows private targets;
    // the agent client's refusal to follow redirects does not depend on that setting.
    const target = await startCanary();
    canary = await startCanary(() => ({
      status: 307,
      location: `http://127.0.0.1:${target.port}/steal?from=redirect`,
    }));
    try {
      h = await startHarness({ env: { BIND_ALLOW_PRIVATE: 'true' } });
      const u = await h.newUser();
      const bound = await ask(h, u, `bind http://127.0.0.1:${canary.port}/webhook my-token`);
      expect(bound).toContain('已绑定');
      for (const status of [301, 302, 303, 307, 308]) {
        canary.server.removeAllListeners('request');
        canary.server.on('request', (req, res) => {
          canary?.hits.push(`${req.method} ${req.url}`);
          res.writeHead(status, { location: `http://127.0.0.1:${target.port}/steal?status=${status}` }).end();
        });
        const answer = await ask(h, u, `redirect ${status}`);
        expect(answer).toBe(boundUnreachable(`http://127.0.0.1:${canary.port}/webhook`));
      }
      await h.idle();
      expect(canary.hits.filter((x) => x.startsWith('POST /webhook')).length).toBeGreaterThanOrEqual(5);
      expect(target.hits).toEqual([]);
    } finally {
      for (const s of target.sockets) s.destroy();
      await new Promise((r) => target.server.close(r));
    }
  }, 120_000);

  it("a VM's agent answering 30x to a loopback URL is not followed either", async () => {
    const target = await startCanary();
    try {
      h = await startHarness();
      const u = await h.newUser();
      // The VM's agent URL (from the orchestrator) answers every message with a redirect.
      const redirector = createServer((_req, res) => {
        res.writeHead(302, { location: `http://127.0.0.1:${target.port}/steal` }).end();
      });
      await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
      try {
        const url = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/webhook`;
        h.orch.agentUrl = url;
        const answer = await ask(h, u, '你好');
        expect(answer).toBe(T.agentUnreachable);
        await h.idle(30_000);
        expect(target.hits).toEqual([]);
      } finally {
        redirector.closeAllConnections();
        await new Promise((r) => redirector.close(r));
      }
    } finally {
      for (const s of target.sockets) s.destroy();
      await new Promise((r) => target.server.close(r));
    }
  }, 120_000);
});
