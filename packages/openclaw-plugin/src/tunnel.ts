import type { WebhookServerConfig } from './config.js';
import { errorMessage, PluginError } from './errors.js';
import type { PluginLogger } from './logger.js';

/** The part of `@ngrok/ngrok` this plugin uses. */
export interface NgrokModule {
  forward(config: Record<string, unknown>): Promise<{ url(): string | null; close(): Promise<void> }>;
}

export interface Tunnel {
  url: string;
  close(): Promise<void>;
}

const NGROK_PACKAGE = '@ngrok/ngrok';

async function loadNgrok(): Promise<NgrokModule> {
  const specifier: string = NGROK_PACKAGE;
  const mod = (await import(specifier)) as NgrokModule & { default?: NgrokModule };
  return typeof mod.forward === 'function' ? mod : (mod.default as NgrokModule);
}

/** ngrok's agent connect address for a region (what the ngrok agent's `--region` selects). */
export function ngrokServerAddr(
  cfg: Pick<WebhookServerConfig, 'ngrokRegion' | 'ngrokServerAddr'>,
): string | undefined {
  if (cfg.ngrokServerAddr) return cfg.ngrokServerAddr;
  if (cfg.ngrokRegion) return `connect.${cfg.ngrokRegion}.ngrok-agent.com:443`;
  return undefined;
}

function tunnelError(message: string, cause?: unknown): PluginError {
  return new PluginError('OCP_TUNNEL_FAILED', `ngrok tunnel not started: ${message}`, { cause });
}

/**
 * Opens an ngrok tunnel to the webhook port when `useNgrok` is set. Fails with a
 * PluginError (`OCP_TUNNEL_FAILED`) that says what to fix: no authtoken, the package is not
 * installed, or ngrok could not be reached within `timeoutMs`.
 */
export async function startTunnel(
  cfg: WebhookServerConfig,
  logger: PluginLogger,
  opts: { load?: () => Promise<NgrokModule>; timeoutMs?: number } = {},
): Promise<Tunnel> {
  if (!cfg.ngrokAuthToken) {
    throw tunnelError(
      'useNgrok is true but no authtoken is set (plugins.entries.webhook-server.config.ngrokAuthToken or NGROK_AUTHTOKEN)',
    );
  }
  let ngrok: NgrokModule;
  try {
    ngrok = await (opts.load ?? loadNgrok)();
  } catch (err) {
    throw tunnelError(
      `the ${NGROK_PACKAGE} package could not be loaded (${errorMessage(err)}); install it next to the plugin`,
      err,
    );
  }
  const serverAddr = ngrokServerAddr(cfg);
  const config: Record<string, unknown> = {
    addr: cfg.ngrokPort,
    authtoken: cfg.ngrokAuthToken,
    ...(serverAddr ? { server_addr: serverAddr } : {}),
  };
  const timeoutMs = opts.timeoutMs ?? 20_000;
  logger.info(`starting ngrok tunnel to port ${cfg.ngrokPort}${serverAddr ? ` via ${serverAddr}` : ''}`);
  let timer: NodeJS.Timeout | undefined;
  const forwarding = ngrok.forward(config);
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          tunnelError(
            `ngrok did not connect within ${timeoutMs} ms (is ${serverAddr ?? 'connect.ngrok-agent.com:443'} reachable?)`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    const listener = await Promise.race([forwarding, timeout]);
    const url = listener.url();
    if (!url) {
      await listener.close().catch(() => undefined);
      throw tunnelError('ngrok returned no public URL');
    }
    logger.info(`ngrok tunnel up: ${url}/webhook forwards to port ${cfg.ngrokPort}`);
    return { url, close: () => listener.close() };
  } catch (err) {
    // A late success after the timeout must not leave a tunnel open.
    forwarding.then((l) => l.close()).catch(() => undefined);
    if (err instanceof PluginError) throw err;
    throw tunnelError(errorMessage(err), err);
  } finally {
    clearTimeout(timer);
  }
}
