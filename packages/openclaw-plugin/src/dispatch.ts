import type { OpenClawConfig, PluginRuntime } from 'openclaw/plugin-sdk/channel-core';
import { dispatchInboundDirectDmWithRuntime } from 'openclaw/plugin-sdk/channel-inbound';
import { replyText, userAddress, withPerUserSessions } from './addressing.js';
import { CHANNEL_ID, CHANNEL_LABEL, DEFAULT_ACCOUNT_ID } from './constants.js';
import { errorMessage } from './errors.js';
import type { PluginLogger } from './logger.js';
import type { AgentDispatch } from './service.js';

/**
 * Runs one WeChat message as a direct-message turn of the agent through OpenClaw's shared
 * inbound pipeline (route, session record, reply dispatch) and hands each reply to `reply`.
 */
export function createAgentDispatch(params: {
  runtime: PluginRuntime;
  currentConfig: () => OpenClawConfig;
  logger: PluginLogger;
}): AgentDispatch {
  return async (msg, reply) => {
    const cfg = withPerUserSessions(params.currentConfig());
    let dispatchError: unknown;
    let delivered = 0;
    await dispatchInboundDirectDmWithRuntime({
      cfg,
      runtime: params.runtime,
      channel: CHANNEL_ID,
      channelLabel: CHANNEL_LABEL,
      accountId: DEFAULT_ACCOUNT_ID,
      peer: { kind: 'direct', id: msg.openid },
      senderId: msg.openid,
      senderAddress: userAddress(msg.openid),
      recipientAddress: `${CHANNEL_ID}:agent`,
      conversationLabel: msg.nickname ?? msg.openid,
      rawBody: msg.text,
      messageId: msg.messageId,
      timestamp: msg.timestampMs ?? Date.now(),
      // The bridge authenticated with the webhook token and speaks for exactly this user.
      commandAuthorized: true,
      inboundAccessAuthorized: true,
      provider: CHANNEL_ID,
      surface: CHANNEL_ID,
      originatingChannel: CHANNEL_ID,
      originatingTo: userAddress(msg.openid),
      extraContext: { MoltageMsgType: msg.msgType },
      deliver: async (payload) => {
        const text = replyText(payload);
        if (text === '') return;
        await reply(text);
        delivered++;
      },
      onRecordError: (err) => {
        params.logger.warn(`could not record the session of openid ${msg.openid}: ${errorMessage(err)}`);
      },
      onDispatchError: (err, info) => {
        params.logger.error(`reply ${info.kind} for message ${msg.messageId} failed: ${errorMessage(err)}`);
        dispatchError ??= err;
      },
    });
    if (dispatchError !== undefined && delivered === 0) throw dispatchError;
  };
}
