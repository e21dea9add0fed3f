import { join } from 'node:path';
import { CallbackClient } from './callback.js';
import type { ChannelDefaults } from './config.js';
import { PLUGIN_ID } from './constants.js';
import type { PluginLogger } from './logger.js';
import { CallbackRouteStore } from './routes-store.js';

export interface DeliveryDeps {
  routes: CallbackRouteStore;
  callbacks: CallbackClient;
  channelDefaults: () => ChannelDefaults;
}

/**
 * What the webhook service and the channel's outbound adapter share inside one plugin
 * instance: the callback client and the per-openid callback routes.
 */
export class PluginContext {
  private deps?: DeliveryDeps;
  private webhookUp = false;
  private readonly webhookWaiters = new Set<() => void>();

  constructor(
    private readonly opts: {
      logger: PluginLogger;
      channelDefaults: () => ChannelDefaults;
      /** OpenClaw's state directory (`~/.openclaw` unless OPENCLAW_STATE_DIR says otherwise). */
      stateDir: () => string;
    },
  ) {}

  /** Path of the callback routes file inside `stateDir`. */
  static routesFile(stateDir: string): string {
    return join(stateDir, 'plugins', PLUGIN_ID, 'callback-routes.json');
  }

  /** Set by the webhook service: whether it listens, so the channel can report itself healthy. */
  setWebhookListening(up: boolean): void {
    this.webhookUp = up;
    if (!up) return;
    for (const wake of this.webhookWaiters) wake();
    this.webhookWaiters.clear();
  }

  /** Resolves true once the webhook listens, false when `signal` aborts first. */
  waitForWebhook(signal: AbortSignal): Promise<boolean> {
    if (this.webhookUp) return Promise.resolve(true);
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = () => {
        signal.removeEventListener('abort', abort);
        resolve(true);
      };
      const abort = () => {
        this.webhookWaiters.delete(wake);
        resolve(false);
      };
      this.webhookWaiters.add(wake);
      signal.addEventListener('abort', abort, { once: true });
    });
  }

  async delivery(): Promise<DeliveryDeps> {
    if (!this.deps) {
      const routes = new CallbackRouteStore(PluginContext.routesFile(this.opts.stateDir()), this.opts.logger);
      this.deps = {
        routes,
        callbacks: new CallbackClient({ logger: this.opts.logger }),
        channelDefaults: this.opts.channelDefaults,
      };
    }
    await this.deps.routes.load();
    return this.deps;
  }
}
