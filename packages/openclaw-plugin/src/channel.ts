import {
  type ChannelPlugin,
  createChannelPluginBase,
  createChatChannelPlugin,
  type OpenClawConfig,
} from 'openclaw/plugin-sdk/channel-core';
import { normalizeTarget } from './addressing.js';
import { isChannelEnabled, readChannelDefaults } from './config.js';
import { CHANNEL_ID, DEFAULT_ACCOUNT_ID } from './constants.js';
import { PluginError } from './errors.js';
import { channelConfigSchema } from './manifest.js';
import type { PluginContext } from './plugin-context.js';
import { sendProactive } from './service.js';

export interface MoltageAccount {
  accountId: string;
  enabled: boolean;
  callbackUrl?: string;
  hasCallbackToken: boolean;
}

function resolveAccount(cfg: OpenClawConfig, accountId?: string | null): MoltageAccount {
  const defaults = readChannelDefaults(cfg);
  return {
    accountId: accountId ?? DEFAULT_ACCOUNT_ID,
    enabled: isChannelEnabled(cfg),
    ...(defaults.callbackUrl ? { callbackUrl: defaults.callbackUrl } : {}),
    hasCallbackToken: defaults.callbackToken !== undefined,
  };
}

/**
 * The `moltage` channel: one account; inbound messages come through the webhook service, and
 * messages the agent sends on its own go to the bridge through `outbound.sendText`.
 */
export function createMoltageChannel(context: PluginContext): ChannelPlugin<MoltageAccount> {
  const accountConfig: ChannelPlugin<MoltageAccount>['config'] = {
    listAccountIds: () => [DEFAULT_ACCOUNT_ID],
    defaultAccountId: () => DEFAULT_ACCOUNT_ID,
    resolveAccount,
    inspectAccount: (cfg) => {
      const account = resolveAccount(cfg);
      return {
        enabled: account.enabled,
        configured: true,
        callbackUrl: account.callbackUrl ?? null,
        callbackTokenStatus: account.hasCallbackToken ? 'available' : 'missing',
      };
    },
    isEnabled: (account) => account.enabled,
    isConfigured: () => true,
    describeAccount: (account) => ({
      accountId: account.accountId,
      name: 'WeChat via Moltage bridge',
      enabled: account.enabled,
      configured: true,
    }),
  };
  return createChatChannelPlugin<MoltageAccount>({
    base: {
      ...createChannelPluginBase<MoltageAccount>({
        id: CHANNEL_ID,
        meta: {
          id: CHANNEL_ID,
          label: 'Moltage (WeChat)',
          selectionLabel: 'Moltage WeChat bridge (webhook)',
          docsPath: '/channels/moltage',
          docsLabel: 'moltage',
          blurb: 'Chat with this agent from a WeChat Official Account through a Moltage bridge.',
          markdownCapable: false,
        },
        capabilities: { chatTypes: ['direct'], media: false, blockStreaming: false },
        configSchema: { schema: channelConfigSchema() },
        reload: { configPrefixes: [`channels.${CHANNEL_ID}`] },
      }),
      config: accountConfig,
      // Messages arrive through the webhook service, not a connection of the channel's own: the
      // account is "connected" while the webhook listens, which is what OpenClaw's health
      // monitor and GET /readyz look at (without this, /readyz reports the channel failing).
      gateway: {
        startAccount: async (ctx) => {
          if (!(await context.waitForWebhook(ctx.abortSignal))) return;
          ctx.setStatus({ ...ctx.getStatus(), connected: true });
          await new Promise<void>((resolve) => {
            if (ctx.abortSignal.aborted) resolve();
            else ctx.abortSignal.addEventListener('abort', () => resolve(), { once: true });
          });
        },
      },
      messaging: {
        targetPrefixes: [CHANNEL_ID],
        targetIdComparison: 'case-sensitive',
        normalizeTarget: (raw) => normalizeTarget(raw),
        targetResolver: {
          looksLikeId: (raw) => normalizeTarget(raw) !== undefined,
          hint: 'the WeChat openid of a user who wrote to the agent (moltage:<openid>)',
        },
      },
    },
    outbound: {
      deliveryMode: 'gateway',
      textChunkLimit: 16_000,
      sendText: async (ctx) => {
        const openid = normalizeTarget(ctx.to);
        if (!openid) {
          throw new PluginError(
            'OCP_NO_CALLBACK_ROUTE',
            `"${ctx.to}" is not a WeChat openid target (moltage:<openid>)`,
          );
        }
        const deps = await context.delivery();
        await sendProactive(deps, openid, ctx.text);
        return {
          channel: CHANNEL_ID,
          messageId: `${openid}:${Date.now().toString(36)}`,
          timestamp: Date.now(),
        };
      },
    },
  });
}
