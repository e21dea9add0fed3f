import { EventEmitter } from 'node:events';
import type { Logger } from '@moltage/core';
import type {
  AcceptConnection,
  Client,
  ClientChannel,
  Connection,
  PseudoTtyInfo,
  RejectConnection,
  ServerChannel,
  Session,
  TcpipRequestInfo,
} from 'ssh2';
import type { VmControl, VmDirectory } from '../domain/ports.js';
import { type RouteOptions, resolveUpstream, type UpstreamTarget } from '../domain/route.js';
import { GatewayError, userMessageOf } from '../errors.js';
import type { ChannelKind, GatewayMetrics } from '../metrics.js';
import { abortClientChannel, finishClientChannel, notice, relayChannel } from './relay.js';

export const BOOT_NOTICE =
  'moltage: starting your VM, this takes a few seconds… / 正在启动你的虚拟机，请稍候…\n';
/** How long an idle connection waits for its closing notice to be written. */
const NOTICE_FLUSH_MS = 2_000;

export const IDLE_NOTICE = 'moltage: closing the connection after a long time without activity.\n';

export interface UserConnectionDeps {
  openid: string;
  client: Connection;
  log: Logger;
  directory: VmDirectory;
  control: VmControl;
  connect(target: UpstreamTarget): Promise<Client>;
  route: Omit<RouteOptions, 'afterStart'>;
  metrics: GatewayMetrics;
  /** 0 = never. */
  idleTimeoutMs: number;
  touchIntervalMs: number;
}

/** Environment variable names passed on to the VM (the VM's sshd still decides with AcceptEnv). */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const MAX_ENV_VARS = 64;
const MAX_ENV_VALUE_BYTES = 4096;

/**
 * One authenticated client connection: it owns a single SSH connection to the user's VM (made
 * once, shared by all channels), starts the VM when it is not running, relays session and
 * direct-tcpip channels, touches the VM while open and closes after IDLE_TIMEOUT_S of silence.
 * Either connection closing closes the other.
 */
export class UserConnection extends EventEmitter {
  #upstream: Promise<Client> | undefined;
  #upstreamClient: Client | undefined;
  #booting = false;
  #closed = false;
  #lastActivityMs = Date.now();
  #openChannels = 0;
  /** Open shell/exec/subsystem channels, to tell their users why the connection closes. */
  readonly #sessions = new Set<{ down: ServerChannel; crlf: () => boolean }>();
  #timers: NodeJS.Timeout[] = [];
  readonly #abort = new AbortController();

  constructor(private readonly d: UserConnectionDeps) {
    super();
    // Every channel waiting for a booting VM listens for 'booting'.
    this.setMaxListeners(0);
    d.client.on('session', (accept, reject) => this.#onSession(accept, reject));
    d.client.on('tcpip', (accept, reject, info) => this.#onTcpip(accept, reject, info));
    if (d.idleTimeoutMs > 0) {
      const every = Math.max(250, Math.min(30_000, Math.floor(d.idleTimeoutMs / 4)));
      const timer = setInterval(() => {
        if (Date.now() - this.#lastActivityMs >= d.idleTimeoutMs) {
          d.log.info({ idleMs: Date.now() - this.#lastActivityMs }, 'closing idle connection');
          for (const t of this.#timers) clearInterval(t);
          // Tell every open session why, and close it, before the connection goes: OpenSSH exits on
          // a disconnect without printing stderr it has read but not written yet, while a closed
          // channel is drained first.
          const closed = [...this.#sessions].map(({ down, crlf }) =>
            abortClientChannel(down, IDLE_NOTICE, crlf()),
          );
          const cap = new Promise((resolve) => setTimeout(resolve, NOTICE_FLUSH_MS).unref());
          void Promise.race([Promise.all(closed), cap]).then(() => this.close());
        }
      }, every);
      timer.unref();
      this.#timers.push(timer);
    }
  }

  activity(): void {
    this.#lastActivityMs = Date.now();
  }

  /** The VM connection, made on first use (the gateway calls this right after login). */
  upstream(): Promise<Client> {
    this.#upstream ??= this.#openUpstream();
    return this.#upstream;
  }

  /** Closes the client connection and the VM connection. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#abort.abort();
    this.#upstreamClient?.end();
    this.d.client.end();
  }

  async #openUpstream(): Promise<Client> {
    const { openid, log } = this.d;
    let vm = await this.d.directory.get(openid);
    let route = resolveUpstream({ openid }, vm, { ...this.d.route, afterStart: false });
    let started = false;
    const start = async () => {
      started = true;
      this.#booting = true;
      this.emit('booting');
      log.info({ state: vm?.state ?? 'none' }, 'starting the VM through the orchestrator');
      try {
        vm = await this.d.control.start(openid, this.#abort.signal);
        this.d.metrics.vmStart('ok');
      } catch (err) {
        this.d.metrics.vmStart('error');
        throw err;
      } finally {
        this.#booting = false;
        // Booting is not idleness.
        this.activity();
      }
      route = resolveUpstream({ openid }, vm, { ...this.d.route, afterStart: true });
    };
    if (route.kind === 'start') await start();

    let client: Client | undefined;
    for (let attempt = 0; client === undefined; attempt++) {
      if (route.kind === 'start') throw new Error('unreachable: route still says start');
      if (route.kind === 'reject') {
        throw new GatewayError(route.code, route.reason, {
          userMessage:
            route.code === 'SSHGW_VM_START_FAILED'
              ? 'Your VM could not be started. Please try again later.'
              : 'Your VM has no SSH access configured. Please contact the operator.',
        });
      }
      const began = process.hrtime.bigint();
      try {
        client = await this.d.connect(route.target);
        this.d.metrics.upstreamConnected(Number(process.hrtime.bigint() - began) / 1e9);
      } catch (err) {
        const code = err instanceof GatewayError ? err.code : undefined;
        this.d.metrics.upstreamFailed(
          code === 'SSHGW_VM_HOST_KEY_MISMATCH'
            ? 'host_key_mismatch'
            : code === 'SSHGW_VM_AUTH_FAILED'
              ? 'auth'
              : 'unreachable',
        );
        // A record that says "running" for a VM that died: the orchestrator notices and restarts it.
        if (code === 'SSHGW_VM_UNREACHABLE' && !started && attempt === 0 && !this.#closed) {
          log.warn({ err: (err as Error).message }, 'VM did not answer; asking the orchestrator to start it');
          await start();
          continue;
        }
        throw err;
      }
    }

    if (this.#closed) {
      client.end();
      throw new GatewayError('SSHGW_VM_UNREACHABLE', 'client left before the VM connection was ready');
    }
    this.#upstreamClient = client;
    client.on('close', () => {
      if (!this.#closed) log.info('VM connection closed; closing the client connection');
      this.close();
    });
    const touch = setInterval(() => {
      this.d.control
        .touch(openid)
        .catch((err: Error) => log.warn({ err: err.message }, 'touching the VM failed'));
    }, this.d.touchIntervalMs);
    touch.unref();
    this.#timers.push(touch);
    return client;
  }

  /** Waits for the VM connection on behalf of a channel, telling its user when the VM boots. */
  async #waitUpstream(down: ServerChannel | null, crlf: () => boolean): Promise<Client> {
    const onBooting = () => down && notice(down, BOOT_NOTICE, crlf());
    if (this.#booting) onBooting();
    else this.on('booting', onBooting);
    try {
      return await this.upstream();
    } finally {
      this.off('booting', onBooting);
    }
  }

  #channelOpened(kind: ChannelKind): () => void {
    this.#openChannels++;
    this.activity();
    this.d.metrics.channelOpened(kind);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#openChannels--;
      this.activity();
      this.d.metrics.channelClosed(kind);
    };
  }

  #hooks() {
    return {
      log: this.d.log,
      toVm: (n: number) => {
        this.#lastActivityMs = Date.now();
        this.d.metrics.bytes('to_vm', n);
      },
      toClient: (n: number) => {
        this.#lastActivityMs = Date.now();
        this.d.metrics.bytes('to_client', n);
      },
    };
  }

  #onSession(accept: AcceptConnection<Session>, _reject: RejectConnection): void {
    const session = accept();
    this.activity();
    let pty: PseudoTtyInfo | null = null;
    const env: Record<string, string> = {};
    let up: ClientChannel | null = null;
    let started = false;

    session.on('pty', (ok, _no, info) => {
      pty = info;
      ok?.();
    });
    session.on('window-change', (ok, _no, info) => {
      if (up) up.setWindow(info.rows, info.cols, info.height, info.width);
      else if (pty) pty = { ...pty, ...info };
      ok?.();
    });
    session.on('env', (ok, no, info) => {
      const fits =
        ENV_NAME.test(info.key) &&
        Object.keys(env).length < MAX_ENV_VARS &&
        Buffer.byteLength(String(info.val)) <= MAX_ENV_VALUE_BYTES;
      if (fits) env[info.key] = String(info.val);
      fits ? ok?.() : no?.();
    });
    session.on('signal', (ok, _no, info) => {
      try {
        up?.signal(info.name);
      } catch (err) {
        this.d.log.debug({ err: (err as Error).message }, 'signal not relayed');
      }
      ok?.();
    });
    session.on('auth-agent', (_ok, no) => no?.());
    session.on('x11', (_ok, no) => no?.());

    const run = (
      kind: 'shell' | 'exec' | 'subsystem',
      acceptReq: AcceptConnection<ServerChannel>,
      rejectReq: RejectConnection | undefined,
      arg: string,
    ) => {
      // One shell, command or subsystem per session channel (RFC 4254 §6.5).
      if (started) return rejectReq?.();
      started = true;
      const down = acceptReq();
      const closed = this.#channelOpened(kind);
      const crlf = () => pty !== null;
      const sessionEntry = { down, crlf };
      this.#sessions.add(sessionEntry);
      let downGone = false;
      down.once('close', () => {
        downGone = true;
        this.#sessions.delete(sessionEntry);
        closed();
      });
      void this.#waitUpstream(down, crlf)
        .then((client) => this.#openVmChannel(client, kind, arg, pty, env))
        .then(
          (channel) => {
            if (downGone) {
              channel.close();
              return;
            }
            up = channel;
            return relayChannel(down, channel, this.#hooks());
          },
          async (err: unknown) => {
            this.d.log.warn(
              { err: (err as Error).message, code: (err as GatewayError).code, kind },
              'channel failed',
            );
            notice(down, `moltage: ${userMessageOf(err)}\n`, crlf());
            await finishClientChannel(down, { code: 255 }, this.d.log);
            if (err instanceof GatewayError && !this.#upstreamClient) this.#closeWhenIdle();
          },
        )
        .catch((err: Error) => this.d.log.error({ err }, 'session relay failed'));
    };
    session.on('shell', (ok, no) => run('shell', ok, no, ''));
    session.on('exec', (ok, no, info) => run('exec', ok, no, info.command));
    session.on('subsystem', (ok, no, info) => run('subsystem', ok, no, info.name));
  }

  #openVmChannel(
    client: Client,
    kind: 'shell' | 'exec' | 'subsystem',
    arg: string,
    pty: PseudoTtyInfo | null,
    env: Record<string, string>,
  ): Promise<ClientChannel> {
    const window = pty
      ? {
          rows: pty.rows,
          cols: pty.cols,
          height: pty.height,
          width: pty.width,
          term: pty.term,
          modes: pty.modes,
        }
      : undefined;
    const hasEnv = Object.keys(env).length > 0;
    return new Promise((resolve, reject) => {
      const done = (err: Error | undefined, channel: ClientChannel) => {
        if (err) {
          reject(
            new GatewayError('SSHGW_VM_UNREACHABLE', `VM refused the ${kind} request: ${err.message}`, {
              cause: err,
              userMessage: `Your VM refused the ${kind} request.`,
            }),
          );
        } else resolve(channel);
      };
      try {
        if (kind === 'shell') client.shell(window ?? false, hasEnv ? { env } : {}, done);
        else if (kind === 'exec')
          client.exec(arg, { ...(window ? { pty: window } : {}), ...(hasEnv ? { env } : {}) }, done);
        else client.subsys(arg, done);
      } catch (err) {
        reject(
          new GatewayError('SSHGW_VM_UNREACHABLE', `VM connection is gone: ${(err as Error).message}`, {
            cause: err,
          }),
        );
      }
    });
  }

  #onTcpip(accept: AcceptConnection<ServerChannel>, reject: RejectConnection, info: TcpipRequestInfo): void {
    this.activity();
    const where = `${info.destIP}:${info.destPort}`;
    this.#waitUpstream(null, () => false)
      .then(
        (client) =>
          new Promise<ClientChannel>((resolve, fail) => {
            try {
              client.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, ch) =>
                err ? fail(err) : resolve(ch),
              );
            } catch (err) {
              fail(err as Error);
            }
          }),
      )
      .then(
        (up) => {
          const down = accept();
          if (!down) {
            up.close();
            return;
          }
          const closed = this.#channelOpened('direct-tcpip');
          down.once('close', closed);
          this.d.log.debug({ to: where }, 'port forward opened');
          return relayChannel(down, up, this.#hooks());
        },
        (err: Error) => {
          this.d.log.info({ to: where, err: err.message }, 'port forward refused');
          reject();
          if (err instanceof GatewayError && !this.#upstreamClient) this.#closeWhenIdle();
        },
      )
      .catch((err: Error) => this.d.log.error({ err }, 'port forward relay failed'));
  }

  /** After the VM connection failed for good: close once no channel is still telling its user. */
  #closeWhenIdle(): void {
    if (this.#openChannels <= 0) this.close();
    else setTimeout(() => this.#closeWhenIdle(), 200).unref();
  }
}
