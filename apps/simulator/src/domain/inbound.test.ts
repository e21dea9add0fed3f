import { buildXml, dedupKey, parseMessage } from '@moltage/wechat';
import { describe, expect, it } from 'vitest';
import { bareMsgId, buildInbound, MsgIdSequence, type UserAction, userMessageSchema } from './inbound.js';

const ctx = {
  toUserName: 'gh_0123456789ab',
  fromUserName: 'oUser123',
  createTime: 1_700_000_000,
  msgId: '24000000000000000123',
  mediaId: 'MEDIA1',
  mediaBaseUrl: 'http://127.0.0.1:3100/',
};

const xmlOf = (a: UserAction) => bareMsgId(buildXml(buildInbound(a, ctx).fields));

describe('buildInbound', () => {
  it('a text message in WeChat’s field order with a bare 64-bit MsgId', () => {
    const inbound = buildInbound({ type: 'text', content: 'hi ]]> there' }, ctx);
    expect(Object.keys(inbound.fields)).toEqual([
      'ToUserName',
      'FromUserName',
      'CreateTime',
      'MsgType',
      'Content',
      'MsgId',
    ]);
    const xml = xmlOf({ type: 'text', content: 'hi ]]> there' });
    expect(xml).toContain('<CreateTime>1700000000</CreateTime>');
    expect(xml).toContain('<MsgId>24000000000000000123</MsgId>');
    const msg = parseMessage(xml);
    expect(msg).toMatchObject({ msgType: 'text', content: 'hi ]]> there', msgId: '24000000000000000123' });
    expect(inbound).toMatchObject({ msgId: ctx.msgId, ref: ctx.msgId, kind: 'text', opensWindow: true });
  });

  it('media messages point PicUrl at the simulator', () => {
    const img = buildInbound({ type: 'image' }, ctx);
    expect(img.fields).toMatchObject({ PicUrl: 'http://127.0.0.1:3100/sim/media/MEDIA1', MediaId: 'MEDIA1' });
    expect(
      buildInbound({ type: 'image', picUrl: 'http://x.test/p.png', mediaId: 'M2' }, ctx).fields,
    ).toMatchObject({
      PicUrl: 'http://x.test/p.png',
      MediaId: 'M2',
    });
  });

  it('voice with and without Recognition', () => {
    expect(buildInbound({ type: 'voice', recognition: '你好' }, ctx).fields).toMatchObject({
      Format: 'amr',
      Recognition: '你好',
    });
    expect(buildInbound({ type: 'voice' }, ctx).fields).not.toHaveProperty('Recognition');
  });

  it('events carry no MsgId, are keyed by FromUserName:CreateTime, and only some open the window', () => {
    const cases: [UserAction, boolean][] = [
      [{ type: 'event', event: 'subscribe' }, true],
      [{ type: 'event', event: 'subscribe', qrscene: '7' }, true],
      [{ type: 'event', event: 'unsubscribe' }, false],
      [{ type: 'event', event: 'CLICK', eventKey: 'K' }, true],
      [{ type: 'event', event: 'SCAN', eventKey: '7' }, true],
      [{ type: 'event', event: 'VIEW', eventKey: 'https://example.com/' }, false],
      [{ type: 'event', event: 'LOCATION', latitude: 1, longitude: 2 }, false],
    ];
    for (const [action, opens] of cases) {
      const inbound = buildInbound(action, ctx);
      expect(inbound.msgId).toBeNull();
      expect(inbound.fields).not.toHaveProperty('MsgId');
      expect(inbound.ref).toBe('oUser123:1700000000');
      expect(inbound.opensWindow).toBe(opens);
      const msg = parseMessage(bareMsgId(buildXml(inbound.fields)));
      expect(msg.msgType).toBe('event');
      expect(dedupKey(msg)).toContain('oUser123:1700000000');
    }
    expect(buildInbound({ type: 'event', event: 'subscribe', qrscene: '7' }, ctx).fields).toMatchObject({
      EventKey: 'qrscene_7',
      Ticket: 'sim_ticket_7',
    });
  });

  it('location and link messages', () => {
    expect(
      parseMessage(xmlOf({ type: 'location', latitude: 23.13, longitude: 113.26, label: 'Canton' })),
    ).toMatchObject({
      latitude: 23.13,
      longitude: 113.26,
      scale: 15,
      label: 'Canton',
    });
    expect(parseMessage(xmlOf({ type: 'link', title: 'T', url: 'https://example.com' }))).toMatchObject({
      title: 'T',
      description: '',
      url: 'https://example.com',
    });
  });
});

describe('userMessageSchema', () => {
  it('accepts the message kinds and refuses the rest', () => {
    expect(userMessageSchema.safeParse({ type: 'text', content: 'x' }).success).toBe(true);
    expect(userMessageSchema.safeParse({ type: 'event', event: 'CLICK', eventKey: 'K' }).success).toBe(true);
    expect(userMessageSchema.safeParse({ type: 'event', event: 'subscribe' }).success).toBe(false);
    expect(userMessageSchema.safeParse({ type: 'text', content: '' }).success).toBe(false);
    expect(userMessageSchema.safeParse({ type: 'link', title: 'T', url: 'not a url' }).success).toBe(false);
  });
});

describe('MsgIdSequence', () => {
  it('gives strictly increasing ids above 2^53', () => {
    const seq = new MsgIdSequence('24000000000000000', () => 7);
    const a = seq.next();
    const b = seq.next();
    expect(a).toBe('24000000000000007');
    expect(BigInt(b) - BigInt(a)).toBe(7n);
    expect(BigInt(a)).toBeGreaterThan(BigInt(Number.MAX_SAFE_INTEGER));
  });
});
