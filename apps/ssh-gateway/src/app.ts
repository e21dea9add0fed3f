import { randomBytes } from 'node:crypto';
import type { Logger } from '@moltage/core';
import ssh2, { type AuthContext, type Client, type Connection, type Server } from 'ssh2';
import { connectUpstream } from './adapters/upstream.js';
import type { CredentialStore, FailureCounter, HostKeyPins, VmControl, VmDirectory } from './domain/ports.js';
import type { AuthLimits } from './domain/rate-limit.js';
import type { UpstreamTarget } from './domain/route.js';
import type { GatewayMetrics } from './metrics.js';
import { type AuthAttempt, Authenticator } from './ssh/auth.js';
import { UserConnection } from './ssh/connection.js';

export interface GatewaySettings {
  /** Account inside every VM (VM_SSH_USER). */
  vmUser: string;
  /** VM_SSH_PASS when the legacy fallback is on. */
  legacyPassword?: string;
  limits: AuthLimits;
  maxAuthTries: number;
  loginGraceMs: number;
  /** 0 = never. */
  idleTimeoutMs: number;
  touchIntervalMs: number;
  upstreamConnectTimeoutMs: number;
  maxConnections: number;
}

export interface GatewayDeps {
  /** Private host key texts (OpenSSH/PEM). */
  hostKeys: string[];
  /** The private key every VM trusts for VM_SSH_USER. */
  upstreamPrivateKey: string;
  credentials: CredentialStore;
  failures: FailureCounter;
  pins: HostKeyPins;
  directory: VmDirectory;
  control: VmControl;
  logger: Logger;
  metrics: GatewayMetrics;
  settings: GatewaySettings;
}

export interface Gateway {
  /** The ssh2 server; `listen()` is the caller's job. */
  server: Server;
  stats(): { connections: number; sessions: number };
  /** Stops accepting, ends every connection (client and VM side) and waits up to `timeoutMs`. */
  close(timeoutMs?: number): Promise<void>;
}

/** Methods the gateway offers; the list is the same for every refusal. */
const METHODS: ('publickey' | 'password')[] = ['publickey', 'password'];
/** Auth requests of any kind per connection (key offers included) before the gateway disconnects. */
const MAX_AUTH_REQUESTS = 40;
/** After the VM connection failed, time the client gets to open a session and read why. */
const FAILED_UPSTREAM_GRACE_MS = 2000;

/**
 * ssh2 documents `setNoDelay` on server connections too (README "Connection methods"), but
 * @types/ssh2 only declares it on `Client`.
 */
type NoDelayConnection = Connection & { setNoDelay(noDelay?: boolean): Connection };

/** `::ffff:127.0.0.1` → `127.0.0.1`: one counter per address whatever the socket family. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * Builds the SSH gateway from its dependencies. It never reads the environment and never
 * listens: `gateway.ts` does both.
 */
export function buildGateway(deps: GatewayDeps): Gateway {
  const { settings: s, metrics } = deps;
  const auth = new Authenticator({
    credentials: deps.credentials,
    failures: deps.failures,
    limits: s.limits,
    metrics,
    logger: deps.logger,
  });
  const live = new Set<Connection>();
  let sessions = 0;

  const connect =
    (openid: string, log: Logger) =>
    (target: UpstreamTarget): Promise<Client> =>
      connectUpstream(openid, target, {
        pins: deps.pins,
        logger: log,
        timeoutMs: s.upstreamConnectTimeoutMs,
      });

  const server = new ssh2.Server(
    {
      hostKeys: deps.hostKeys,
      ident: 'MoltageGateway_1.0',
      keepaliveInterval: 30_000,
      keepaliveCountMax: 4,
    },
    (client, info) => {
      // A relay must not add Nagle's delay: ssh2 writes each SSH packet on its own, and a packet
      // held back for an ACK stalls the flow end to end (bench/ssh/README.md). Same upstream.
      (client as NoDelayConnection).setNoDelay(true);
      const address = normalizeAddress(info.ip);
      const log = deps.logger.child({ conn: randomBytes(4).toString('hex'), ip: address });
      live.add(client);
      metrics.connectionOpened();
      let failures = 0;
      let requests = 0;
      let openid: string | null = null;
      let user: UserConnection | null = null;
      let gone = false;
      const grace = setTimeout(() => {
        log.info('login grace time over; disconnecting');
        client.end();
      }, s.loginGraceMs);
      grace.unref();

      client.on('authentication', (ctx: AuthContext) => {
        requests++;
        let attempt: AuthAttempt | null = null;
        if (ctx.method === 'password') {
          attempt = { method: 'password', username: ctx.username, password: ctx.password, address };
        } else if (ctx.method === 'publickey') {
          attempt = {
            method: 'publickey',
            username: ctx.username,
            address,
            keyBlob: ctx.key.data,
            signature: ctx.signature,
            signedData: ctx.blob,
            hashAlgo: ctx.hashAlgo,
          };
        }
        if (attempt === null) {
          ctx.reject(METHODS);
          if (requests >= MAX_AUTH_REQUESTS) client.end();
          return;
        }
        auth.decide(attempt).then(
          (outcome) => {
            if (outcome.result === 'accept') {
              openid = outcome.openid;
              log.info({ openid, method: ctx.method, credential: outcome.detail }, 'login');
              ctx.accept();
              return;
            }
            if (outcome.result === 'key-ok') {
              ctx.accept();
              return;
            }
            ctx.reject(METHODS);
            if (outcome.failure) failures++;
            if (failures >= s.maxAuthTries || requests >= MAX_AUTH_REQUESTS) {
              log.info({ failures, requests }, 'too many login attempts on one connection; disconnecting');
              client.end();
            }
          },
          (err: Error) => {
            // Redis down and the like: refuse, say why in the log, keep the answer identical.
            log.error({ err: err.message, code: (err as { code?: string }).code }, 'login check failed');
            ctx.reject(METHODS);
          },
        );
      });

      client.on('ready', () => {
        clearTimeout(grace);
        // A login decided after the client left: nothing to set up.
        if (gone) return;
        if (openid === null) {
          client.end();
          return;
        }
        sessions++;
        metrics.sessionOpened();
        const userLog = log.child({ openid });
        user = new UserConnection({
          openid,
          client,
          log: userLog,
          directory: deps.directory,
          control: deps.control,
          connect: connect(openid, userLog),
          route: {
            username: s.vmUser,
            privateKey: deps.upstreamPrivateKey,
            legacyPassword: s.legacyPassword,
          },
          metrics,
          idleTimeoutMs: s.idleTimeoutMs,
          touchIntervalMs: s.touchIntervalMs,
        });
        // Start (or reach) the VM right away: it boots while the client sets up its channels.
        user.upstream().catch((err: Error & { code?: string }) => {
          userLog.warn({ err: err.message, code: err.code }, 'cannot reach the VM');
          setTimeout(() => user?.close(), FAILED_UPSTREAM_GRACE_MS).unref();
        });
      });

      // Remote forwarding (-R), streamlocal and the like are not offered.
      client.on('request', (_accept, reject, name) => {
        log.info({ request: name }, 'refused global request');
        reject?.();
      });
      client.on('error', (err: Error) => log.debug({ err: err.message }, 'client connection error'));
      client.once('close', () => {
        gone = true;
        clearTimeout(grace);
        live.delete(client);
        metrics.connectionClosed();
        if (user) {
          sessions--;
          metrics.sessionClosed();
          user.close();
          log.info({ openid }, 'connection closed');
        }
      });
    },
  );
  server.maxConnections = s.maxConnections;

  return {
    server,
    stats: () => ({ connections: live.size, sessions }),
    async close(timeoutMs = 5000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of live) c.end();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), timeoutMs);
      });
      if ((await Promise.race([closed, late])) === 'late') {
        // A peer that does not finish the TCP close: drop its socket.
        for (const c of live) (c as unknown as { _sock?: { destroy(): void } })._sock?.destroy();
        await closed;
      }
      clearTimeout(timer);
    },
  };
}
