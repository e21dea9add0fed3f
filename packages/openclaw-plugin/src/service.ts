import type { CallbackClient, CallbackTarget, DeliveryReport } from './callback.js';
import { type ChannelDefaults, parseWebhookServerConfig, type WebhookServerConfig } from './config.js';
import { WEBHOOK_PATH } from './constants.js';
import { errorMessage, PluginError } from './errors.js';
import type { PluginLogger } from './logger.js';
import type { InboundMessage } from './payload.js';
import type { CallbackRouteStore } from './routes-store.js';
import { startTunnel as defaultStartTunnel, type Tunnel } from './tunnel.js';
import { createWebhookServer, type WebhookServer } from './webhook-server.js';

/** Sends one reply text of the current turn to the user. */
export type ReplyFn = (text: string) => Promise<void>;

/** Hands one user message to the agent; calls `reply` for every reply payload it produces. */
export type AgentDispatch = (msg: InboundMessage, reply: ReplyFn) => Promise<void>;

export interface WebhookServiceDeps {
  /** `plugins.entries.webhook-server.config` as found in the OpenClaw config. */
  rawConfig: unknown;
  env?: NodeJS.ProcessEnv;
  logger: PluginLogger;
  channelDefaults: () => ChannelDefaults;
  routes: CallbackRouteStore;
  callbacks: CallbackClient;
  dispatch: AgentDispatch;
  startTunnel?: typeof defaultStartTunnel;
  /** Told when something that should work does not (the tunnel); the service keeps serving. */
  reportFailure?: (err: unknown) => void;
  /** Waits before each new try of a turn that met a busy OpenClaw state database. */
  busyRetryDelaysMs?: readonly number[];
}

/**
 * OpenClaw refuses a turn with "another OpenClaw process owns state-lifecycle" while one of its
 * own processes holds the state database's lifecycle lock (its startup checks, maintenance).
 * Under emulation that lasts minutes after a boot; the message waits and is tried again, ~3 min
 * in all, before the bridge hears of a failure.
 */
const BUSY_RETRY_DELAYS_MS = [2_000, 4_000, 8_000, 15_000, 30_000, 30_000, 30_000, 30_000, 30_000];

function isStateBusy(err: unknown): boolean {
  return (
    err instanceof Error &&
    (err.name === 'StateDatabaseCoordinatorContentionError' ||
      /^another OpenClaw process owns /.test(err.message))
  );
}

export interface StartedService {
  port: number;
  host: string;
  /**
   * Settles once the ngrok tunnel is up (its public webhook URL) or has failed (undefined,
   * reported and logged). Not awaited by `start`, so a slow tunnel never delays readiness.
   */
  publicUrl: Promise<string | undefined>;
}

/** Longest error text passed on to the bridge. */
const MAX_ERROR_CHARS = 500;

/**
 * The plugin's long-lived part: the webhook server, the optional ngrok tunnel, and the path
 * message → agent → callback. Knows nothing about OpenClaw beyond the `dispatch` it is given.
 */
export class WebhookService {
  private readonly config: WebhookServerConfig;
  private server?: WebhookServer;
  private tunnel?: Tunnel;

  constructor(private readonly deps: WebhookServiceDeps) {
    this.config = parseWebhookServerConfig(deps.rawConfig, deps.env ?? process.env);
  }

  async start(): Promise<StartedService> {
    const { logger } = this.deps;
    await this.deps.routes.load();
    const server = createWebhookServer({
      authToken: this.config.authToken,
      logger,
      channelDefaults: this.deps.channelDefaults,
      onMessage: (msg) => this.handle(msg),
    });
    const address = await server.listen(this.config.port, this.config.host);
    this.server = server;
    logger.info(
      `webhook server listening on ${this.config.host}:${address.port} (POST ${WEBHOOK_PATH}, GET /health)`,
    );

    const publicUrl = this.config.useNgrok ? this.openTunnel(address.port) : Promise.resolve(undefined);
    return { port: address.port, host: this.config.host, publicUrl };
  }

  private async openTunnel(port: number): Promise<string | undefined> {
    const { logger } = this.deps;
    try {
      const tunnel = await (this.deps.startTunnel ?? defaultStartTunnel)(this.config, logger);
      if (!this.server) {
        // Stopped while the tunnel was coming up.
        await tunnel.close().catch(() => undefined);
        return undefined;
      }
      this.tunnel = tunnel;
      return `${tunnel.url}${WEBHOOK_PATH}`;
    } catch (err) {
      logger.error(`${errorMessage(err)}; the webhook server keeps serving on port ${port}`);
      this.deps.reportFailure?.(err);
      return undefined;
    }
  }

  async stop(): Promise<void> {
    const tunnel = this.tunnel;
    this.tunnel = undefined;
    if (tunnel) {
      await tunnel
        .close()
        .catch((err) => this.deps.logger.warn(`closing the ngrok tunnel failed: ${errorMessage(err)}`));
    }
    const server = this.server;
    this.server = undefined;
    await server?.close();
  }

  /** Message → agent → callback. Failures of the agent reach the bridge as `success: false`. */
  async handle(msg: InboundMessage): Promise<void> {
    const target: CallbackTarget = {
      url: msg.callbackUrl,
      ...(msg.callbackToken !== undefined ? { token: msg.callbackToken } : {}),
    };
    await this.deps.routes.set(msg.openid, target);
    const delays = this.deps.busyRetryDelaysMs ?? BUSY_RETRY_DELAYS_MS;
    let replied = false;
    const reply: ReplyFn = async (text) => {
      replied = true;
      await this.deps.callbacks.deliver(target, {
        openid: msg.openid,
        text,
        messageId: msg.messageId,
        success: true,
      });
    };
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.deps.dispatch(msg, reply);
          break;
        } catch (err) {
          // Only a turn that has not answered yet is tried again: nothing is sent twice.
          const wait = delays[attempt];
          if (replied || !isStateBusy(err) || wait === undefined) throw err;
          this.deps.logger.warn(
            `agent turn for message ${msg.messageId}: ${errorMessage(err)}; trying again in ${wait} ms`,
          );
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    } catch (err) {
      this.deps.logger.error(
        `agent turn for message ${msg.messageId} (openid ${msg.openid}) failed: ${errorMessage(err)}`,
      );
      if (
        err instanceof PluginError &&
        (err.code === 'OCP_CALLBACK_FAILED' || err.code === 'OCP_CALLBACK_REJECTED')
      ) {
        return;
      }
      await this.deps.callbacks.deliver(target, {
        openid: msg.openid,
        messageId: msg.messageId,
        success: false,
        error: errorMessage(err).slice(0, MAX_ERROR_CHARS),
      });
    }
  }
}

/**
 * Sends a message the agent writes on its own to `openid`: through the route of that user's
 * last message, else through `channels.moltage.config`.
 */
export async function sendProactive(
  deps: { routes: CallbackRouteStore; callbacks: CallbackClient; channelDefaults: () => ChannelDefaults },
  openid: string,
  text: string,
): Promise<DeliveryReport> {
  const known = await deps.routes.get(openid);
  const defaults = deps.channelDefaults();
  const target: CallbackTarget | undefined =
    known ??
    (defaults.callbackUrl
      ? { url: defaults.callbackUrl, ...(defaults.callbackToken ? { token: defaults.callbackToken } : {}) }
      : undefined);
  if (!target) {
    throw new PluginError(
      'OCP_NO_CALLBACK_ROUTE',
      `no callback URL known for openid ${openid}: the user has not written yet and channels.moltage.config.callbackUrl is not set`,
    );
  }
  return deps.callbacks.deliver(target, { openid, text, success: true });
}
