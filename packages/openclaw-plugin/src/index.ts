import {
  type ChannelPlugin,
  defineChannelPluginEntry,
  type OpenClawPluginApi,
  type PluginRuntime,
} from 'openclaw/plugin-sdk/channel-core';
import type { MoltageAccount } from './channel.js';
import { createMoltageChannel } from './channel.js';
import { readChannelDefaults } from './config.js';
import { PLUGIN_ID } from './constants.js';
import { createAgentDispatch } from './dispatch.js';
import { errorMessage } from './errors.js';
import { pluginConfigSchema } from './manifest.js';
import { PluginContext } from './plugin-context.js';
import { WebhookService } from './service.js';

let apiRef: OpenClawPluginApi | undefined;
/** Set in every registration mode that has a runtime (the CLI sends messages without the full gateway). */
let runtimeRef: PluginRuntime | undefined;

function currentConfig(runtime: PluginRuntime): OpenClawPluginApi['config'] {
  return runtime.config.current() as OpenClawPluginApi['config'];
}

const context = new PluginContext({
  logger: {
    debug: (m) => apiRef?.logger.debug?.(m),
    info: (m) => apiRef?.logger.info(m),
    warn: (m) => apiRef?.logger.warn(m),
    error: (m) => apiRef?.logger.error(m),
  },
  channelDefaults: () => (runtimeRef ? readChannelDefaults(currentConfig(runtimeRef)) : {}),
  stateDir: () => {
    if (!runtimeRef) throw new Error('webhook-server plugin used before OpenClaw handed it a runtime');
    return runtimeRef.state.resolveStateDir(process.env);
  },
});

export { createMoltageChannel } from './channel.js';
export { CHANNEL_ID, DEFAULT_PORT, PLUGIN_ID, WEBHOOK_PATH } from './constants.js';

type PluginEntry = ReturnType<typeof defineChannelPluginEntry<ChannelPlugin<MoltageAccount>>>;

const entry: PluginEntry = defineChannelPluginEntry({
  id: PLUGIN_ID,
  name: 'Moltage webhook channel',
  description:
    'Receives WeChat messages from a Moltage bridge on POST /webhook and posts the agent replies to the bridge callback URL.',
  plugin: createMoltageChannel(context),
  configSchema: () => ({ schema: pluginConfigSchema() }),
  setRuntime(runtime) {
    runtimeRef = runtime;
  },
  registerFull(api) {
    apiRef = api;
    let service: WebhookService | undefined;
    api.registerService({
      id: PLUGIN_ID,
      async start(ctx) {
        const delivery = await context.delivery();
        try {
          service = new WebhookService({
            rawConfig: api.pluginConfig,
            logger: ctx.logger,
            channelDefaults: delivery.channelDefaults,
            routes: delivery.routes,
            callbacks: delivery.callbacks,
            dispatch: createAgentDispatch({
              runtime: api.runtime,
              currentConfig: () => currentConfig(api.runtime),
              logger: ctx.logger,
            }),
            reportFailure: (err) => ctx.serviceHealth?.reportFailure(err),
          });
          const started = await service.start();
          context.setWebhookListening(true);
          void started.publicUrl.then((url) => {
            if (url)
              ctx.logger.info(`webhook reachable at ${url}; bind it in WeChat with: bind ${url} <authToken>`);
          });
        } catch (err) {
          service = undefined;
          ctx.logger.error(`webhook server not started: ${errorMessage(err)}`);
          throw err;
        }
      },
      async stop() {
        const running = service;
        service = undefined;
        context.setWebhookListening(false);
        await running?.stop();
      },
    });
  },
});

export default entry;
