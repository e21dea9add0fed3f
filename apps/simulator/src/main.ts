import { createLogger, type Logger } from '@moltage/core';
import { loadConfig, type SimConfig, USAGE } from './config.js';
import type { AccountConfig } from './domain/account.js';
import { type StartedSimulator, startSimulator } from './start.js';

export interface RunSimulatorOptions {
  /** Where the banner and `--help` go (default process.stdout). */
  stdout?: NodeJS.WritableStream;
  /** Close cleanly on SIGINT/SIGTERM (default true; `moltage up` handles signals itself and passes false). */
  handleSignals?: boolean;
  /** Logger for request logs (default: JSON, or pretty on a terminal, at LOG_LEVEL). */
  logger?: Logger;
}

export interface RunningSimulator extends StartedSimulator {
  config: SimConfig;
}

/** Pretty logs on a terminal, when pino-pretty (a dev dependency) is installed; JSON otherwise. */
function prettyAvailable(): boolean {
  if (!process.stdout.isTTY) return false;
  try {
    import.meta.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * The banner for the local demo operator: where everything is and the credentials the bridge
 * needs. It is the only place secrets are printed; they never reach the JSON logs.
 */
export function banner(url: string, account: AccountConfig, cfg: SimConfig): string {
  const lines = [
    `Moltage WeChat simulator listening on ${url}`,
    `  Chat page (聊天页面):  ${url}/`,
    `  WeChat API:           ${url}/cgi-bin/   → bridge WECHAT_API_BASE=${url}`,
    `  Fake LLM:             ${url}/v1         → LLM_BASE_URL=${url}/v1`,
    `  JSON API for tests:   ${url}/sim/`,
    `  Pushes go to:         ${account.bridgeUrl ?? '(none yet: set SIM_BRIDGE_URL or use the chat page settings)'}`,
    `  Mode (加解密方式):    ${account.mode}    Original id: ${account.originalId}`,
    '',
    '  Credentials for the bridge (local demo only — keep them out of logs):',
    `    WECHAT_APPID=${account.appId}`,
    `    WECHAT_APPSECRET=${account.appSecret}`,
    `    WECHAT_TOKEN=${account.token}`,
    `    WECHAT_ENCODING_AES_KEY=${account.encodingAesKey ?? ''}`,
  ];
  if (cfg.SIM_LLM_API_KEY) lines.push('  The fake LLM requires the bearer key from SIM_LLM_API_KEY.');
  return `${lines.join('\n')}\n`;
}

/**
 * `moltage sim`: reads options and the environment, starts the simulator and prints the
 * banner. Resolves once listening (null after `--help`); with `handleSignals` the first
 * SIGINT/SIGTERM closes it, a second one exits at once.
 */
export async function runSimulator(
  argv: string[] = process.argv.slice(2),
  environment: NodeJS.ProcessEnv = process.env,
  opts: RunSimulatorOptions = {},
): Promise<RunningSimulator | null> {
  const out = opts.stdout ?? process.stdout;
  const cfg = loadConfig(argv, environment);
  if (cfg === null) {
    out.write(USAGE);
    return null;
  }
  const logger =
    opts.logger ?? createLogger({ name: 'simulator', level: cfg.LOG_LEVEL, pretty: prettyAvailable() });
  const started = await startSimulator({
    port: cfg.SIM_PORT,
    host: cfg.SIM_HOST,
    logger,
    ...(cfg.SIM_PUBLIC_URL ? { publicUrl: cfg.SIM_PUBLIC_URL } : {}),
    ...(cfg.SIM_LLM_API_KEY ? { llmApiKey: cfg.SIM_LLM_API_KEY } : {}),
    account: {
      mode: cfg.SIM_MODE,
      ...(cfg.SIM_APPID ? { appId: cfg.SIM_APPID } : {}),
      ...(cfg.SIM_APPSECRET ? { appSecret: cfg.SIM_APPSECRET } : {}),
      ...(cfg.SIM_TOKEN ? { token: cfg.SIM_TOKEN } : {}),
      ...(cfg.SIM_AES_KEY ? { encodingAesKey: cfg.SIM_AES_KEY } : {}),
      ...(cfg.SIM_BRIDGE_URL ? { bridgeUrl: cfg.SIM_BRIDGE_URL } : {}),
      ...(cfg.SIM_ORIGINAL_ID ? { originalId: cfg.SIM_ORIGINAL_ID } : {}),
    },
  });
  const account = started.account;
  out.write(banner(started.url, account, cfg));
  logger.info({ url: started.url, mode: account.mode, appId: account.appId }, 'simulator started');

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await started.close();
      logger.info('simulator stopped');
    })();
    return closing;
  };
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(signal === 'SIGINT' ? 130 : 143);
    signalled = true;
    logger.info({ signal }, 'stopping');
    close().catch((err: unknown) => {
      logger.error({ err }, 'error while stopping');
      process.exitCode = 1;
    });
  };
  if (opts.handleSignals ?? true) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return {
    url: started.url,
    get account() {
      return started.sim.account;
    },
    sim: started.sim,
    app: started.app,
    config: cfg,
    close,
  };
}
