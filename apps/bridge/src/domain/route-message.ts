import type { WeChatMessage } from '@moltage/wechat';
import { type Command, parseCommand } from './commands.js';
import { T } from './texts.js';

/** What to do with one push. Pure: decided from the message alone. */
export type Route =
  | { kind: 'command'; command: Command }
  | { kind: 'agent'; text: string; msgType: string }
  | { kind: 'answer'; text: string }
  | { kind: 'subscribe' }
  | { kind: 'unsubscribe' }
  | { kind: 'ignore'; reason: string };

function fmtCoord(n: number): string {
  return Number.isFinite(n) ? String(n) : '?';
}

export function routeMessage(msg: WeChatMessage): Route {
  switch (msg.msgType) {
    case 'text': {
      if (msg.content.trim() === '') return { kind: 'answer', text: T.emptyText };
      const command = parseCommand(msg.content);
      return command ? { kind: 'command', command } : { kind: 'agent', text: msg.content, msgType: 'text' };
    }
    case 'voice':
      return msg.recognition?.trim()
        ? { kind: 'agent', text: msg.recognition.trim(), msgType: 'voice' }
        : { kind: 'answer', text: T.voiceUnsupported };
    case 'image':
      return { kind: 'agent', text: `[图片] 用户发送了一张图片：${msg.picUrl}`, msgType: 'image' };
    case 'link':
      return {
        kind: 'agent',
        text: [`[链接] ${msg.title}`, msg.description, msg.url].filter((s) => s.trim() !== '').join('\n'),
        msgType: 'link',
      };
    case 'location':
      return {
        kind: 'agent',
        text: `[位置] ${msg.label || '（无地址）'}（纬度 ${fmtCoord(msg.latitude)}，经度 ${fmtCoord(msg.longitude)}）`,
        msgType: 'location',
      };
    case 'video':
    case 'shortvideo':
      return { kind: 'agent', text: '[视频] 用户发送了一段视频（暂时无法查看内容）', msgType: msg.msgType };
    case 'event':
      switch (msg.event) {
        case 'subscribe':
          return { kind: 'subscribe' };
        case 'unsubscribe':
          return { kind: 'unsubscribe' };
        case 'CLICK': {
          const command = parseCommand(msg.eventKey);
          if (command) return { kind: 'command', command };
          if (msg.eventKey.trim() === '') return { kind: 'ignore', reason: 'empty menu key' };
          return { kind: 'agent', text: `[菜单] ${msg.eventKey}`, msgType: 'event' };
        }
        default:
          return { kind: 'ignore', reason: `event ${msg.event}` };
      }
    case 'unknown':
      if (msg.originalMsgType === 'event') return { kind: 'ignore', reason: `event ${msg.event ?? '?'}` };
      return { kind: 'answer', text: T.unsupportedType };
  }
}

/**
 * Whether WeChat counts this push as a user action that opens a fresh customer-service window
 * (5 messages in 48 h): messages, following, scanning a code, clicking a menu.
 */
export function opensServiceWindow(msg: WeChatMessage): boolean {
  if (msg.msgType !== 'event') return msg.msgType !== 'unknown' || msg.originalMsgType !== 'event';
  return msg.event === 'subscribe' || msg.event === 'SCAN' || msg.event === 'CLICK';
}
