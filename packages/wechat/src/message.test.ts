import { describe, expect, it } from 'vitest';
import { WeChatError } from './errors.js';
import { dedupKey, parseMessage, type WeChatMessage } from './message.js';

// Sample pushes as documented in WeChat's Official Account docs (接收普通消息 / 接收事件推送),
// laid out the way the docs show them (newlines and indentation between elements).
const samples = {
  text: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1348831860</CreateTime>
  <MsgType><![CDATA[text]]></MsgType>
  <Content><![CDATA[this is a test]]></Content>
  <MsgId>1234567890123456</MsgId>
  <MsgDataId>xxxx</MsgDataId>
  <Idx>xxxx</Idx>
</xml>`,
  image: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1348831860</CreateTime>
  <MsgType><![CDATA[image]]></MsgType>
  <PicUrl><![CDATA[this is a url]]></PicUrl>
  <MediaId><![CDATA[media_id]]></MediaId>
  <MsgId>1234567890123456</MsgId>
</xml>`,
  voice: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[voice]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <Format><![CDATA[Format]]></Format>
  <MsgId>1234567890123456</MsgId>
</xml>`,
  voiceRecognition: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[voice]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <Format><![CDATA[Format]]></Format>
  <Recognition><![CDATA[腾讯微信团队]]></Recognition>
  <MsgId>1234567890123456</MsgId>
</xml>`,
  video: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[video]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId>
  <MsgId>1234567890123456</MsgId>
</xml>`,
  shortvideo: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[shortvideo]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId>
  <MsgId>1234567890123456</MsgId>
</xml>`,
  location: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1351776360</CreateTime>
  <MsgType><![CDATA[location]]></MsgType>
  <Location_X>23.134521</Location_X>
  <Location_Y>113.358803</Location_Y>
  <Scale>20</Scale>
  <Label><![CDATA[位置信息]]></Label>
  <MsgId>1234567890123456</MsgId>
</xml>`,
  link: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1351776360</CreateTime>
  <MsgType><![CDATA[link]]></MsgType>
  <Title><![CDATA[公众平台官网链接]]></Title>
  <Description><![CDATA[公众平台官网链接]]></Description>
  <Url><![CDATA[url]]></Url>
  <MsgId>1234567890123456</MsgId>
</xml>`,
  subscribe: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe]]></Event>
</xml>`,
  subscribeQr: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe]]></Event>
  <EventKey><![CDATA[qrscene_123123]]></EventKey>
  <Ticket><![CDATA[TICKET]]></Ticket>
</xml>`,
  unsubscribe: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[unsubscribe]]></Event>
</xml>`,
  scan: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[SCAN]]></Event>
  <EventKey><![CDATA[SCENE_VALUE]]></EventKey>
  <Ticket><![CDATA[TICKET]]></Ticket>
</xml>`,
  locationEvent: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[LOCATION]]></Event>
  <Latitude>23.137466</Latitude>
  <Longitude>113.352425</Longitude>
  <Precision>119.385040</Precision>
</xml>`,
  click: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[CLICK]]></Event>
  <EventKey><![CDATA[EVENTKEY]]></EventKey>
</xml>`,
  view: `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[VIEW]]></Event>
  <EventKey><![CDATA[www.qq.com]]></EventKey>
</xml>`,
  // A later event type (template message delivery report) this library does not model.
  templateJob: `<xml>
  <ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>
  <FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>
  <CreateTime>1395658920</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>
  <MsgID>200163836</MsgID>
  <Status><![CDATA[success]]></Status>
</xml>`,
};

function badXml(xml: string): string {
  try {
    parseMessage(xml);
  } catch (err) {
    expect(err).toBeInstanceOf(WeChatError);
    return (err as WeChatError).code;
  }
  throw new Error('parseMessage accepted invalid input');
}

describe('parseMessage on documented samples', () => {
  it('text', () => {
    const m = parseMessage(samples.text);
    expect(m).toMatchObject({
      msgType: 'text',
      toUserName: 'toUser',
      fromUserName: 'fromUser',
      createTime: 1348831860,
      content: 'this is a test',
      msgId: '1234567890123456',
    });
    expect(m.raw['MsgDataId']).toBe('xxxx');
  });

  it('image', () => {
    expect(parseMessage(samples.image)).toMatchObject({
      msgType: 'image',
      picUrl: 'this is a url',
      mediaId: 'media_id',
      msgId: '1234567890123456',
    });
  });

  it('voice, with and without Recognition', () => {
    const plain = parseMessage(samples.voice);
    expect(plain).toMatchObject({
      msgType: 'voice',
      mediaId: 'media_id',
      format: 'Format',
      msgId: '1234567890123456',
    });
    expect('recognition' in plain).toBe(false);
    expect(parseMessage(samples.voiceRecognition)).toMatchObject({
      msgType: 'voice',
      recognition: '腾讯微信团队',
    });
  });

  it('video and shortvideo', () => {
    expect(parseMessage(samples.video)).toMatchObject({
      msgType: 'video',
      mediaId: 'media_id',
      thumbMediaId: 'thumb_media_id',
    });
    expect(parseMessage(samples.shortvideo)).toMatchObject({
      msgType: 'shortvideo',
      mediaId: 'media_id',
      thumbMediaId: 'thumb_media_id',
    });
  });

  it('location', () => {
    expect(parseMessage(samples.location)).toMatchObject({
      msgType: 'location',
      latitude: 23.134521,
      longitude: 113.358803,
      scale: 20,
      label: '位置信息',
      msgId: '1234567890123456',
    });
  });

  it('link', () => {
    expect(parseMessage(samples.link)).toMatchObject({
      msgType: 'link',
      title: '公众平台官网链接',
      description: '公众平台官网链接',
      url: 'url',
    });
  });

  it('subscribe, plain and through a parametric QR code', () => {
    const plain = parseMessage(samples.subscribe);
    expect(plain).toMatchObject({
      msgType: 'event',
      event: 'subscribe',
      fromUserName: 'FromUser',
      createTime: 123456789,
    });
    expect('scene' in plain).toBe(false);
    expect(parseMessage(samples.subscribeQr)).toMatchObject({
      msgType: 'event',
      event: 'subscribe',
      eventKey: 'qrscene_123123',
      scene: '123123',
      ticket: 'TICKET',
    });
  });

  it('unsubscribe', () => {
    expect(parseMessage(samples.unsubscribe)).toMatchObject({ msgType: 'event', event: 'unsubscribe' });
  });

  it('SCAN', () => {
    expect(parseMessage(samples.scan)).toMatchObject({
      msgType: 'event',
      event: 'SCAN',
      eventKey: 'SCENE_VALUE',
      ticket: 'TICKET',
    });
  });

  it('LOCATION', () => {
    expect(parseMessage(samples.locationEvent)).toMatchObject({
      msgType: 'event',
      event: 'LOCATION',
      latitude: 23.137466,
      longitude: 113.352425,
      precision: 119.38504,
    });
  });

  it('CLICK and VIEW', () => {
    expect(parseMessage(samples.click)).toMatchObject({
      msgType: 'event',
      event: 'CLICK',
      eventKey: 'EVENTKEY',
    });
    expect(parseMessage(samples.view)).toMatchObject({
      msgType: 'event',
      event: 'VIEW',
      eventKey: 'www.qq.com',
    });
  });

  it('unknown events and message types become UnknownMessage and keep every field', () => {
    const m = parseMessage(samples.templateJob);
    expect(m).toMatchObject({ msgType: 'unknown', originalMsgType: 'event', event: 'TEMPLATESENDJOBFINISH' });
    expect(m.raw).toMatchObject({ MsgID: '200163836', Status: 'success' });
    const other = parseMessage(samples.text.replace('[CDATA[text]]', '[CDATA[miniprogrampage]]'));
    expect(other).toMatchObject({
      msgType: 'unknown',
      originalMsgType: 'miniprogrampage',
      msgId: '1234567890123456',
    });
  });

  it('tolerates unknown fields and nested elements', () => {
    const xml = samples.text.replace(
      '</xml>',
      '<BizMsgMenuId>101</BizMsgMenuId><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType></ScanCodeInfo></xml>',
    );
    const m = parseMessage(xml);
    expect(m).toMatchObject({ msgType: 'text', content: 'this is a test' });
    expect(m.raw['BizMsgMenuId']).toBe('101');
    expect(m.raw['ScanCodeInfo.ScanType']).toBe('qrcode');
  });

  it('narrows on msgType and event in TypeScript', () => {
    const describeMsg = (m: WeChatMessage): string => {
      switch (m.msgType) {
        case 'text':
          return m.content;
        case 'voice':
          return m.recognition ?? 'voice';
        case 'event':
          return m.event === 'CLICK' ? m.eventKey : m.event;
        default:
          return m.msgType;
      }
    };
    expect(describeMsg(parseMessage(samples.text))).toBe('this is a test');
    expect(describeMsg(parseMessage(samples.click))).toBe('EVENTKEY');
    expect(describeMsg(parseMessage(samples.templateJob))).toBe('unknown');
  });
});

describe('parseMessage refuses pushes without the required fields', () => {
  const drop = (xml: string, tag: string) => xml.replace(new RegExp(`<${tag}>.*?</${tag}>`), '');

  it.each(['ToUserName', 'FromUserName', 'CreateTime', 'MsgType'])('missing %s → WECHAT_BAD_XML', (tag) => {
    expect(badXml(drop(samples.text, tag))).toBe('WECHAT_BAD_XML');
  });

  it('empty or non-numeric CreateTime, missing Event, bad coordinates → WECHAT_BAD_XML', () => {
    expect(badXml(samples.text.replace('1348831860', ''))).toBe('WECHAT_BAD_XML');
    expect(badXml(samples.text.replace('1348831860', '12abc'))).toBe('WECHAT_BAD_XML');
    expect(badXml(samples.text.replace('1348831860', '-5'))).toBe('WECHAT_BAD_XML');
    expect(badXml(samples.text.replace('1348831860', '1e9'))).toBe('WECHAT_BAD_XML');
    expect(badXml(drop(samples.click, 'Event'))).toBe('WECHAT_BAD_XML');
    expect(badXml(samples.location.replace('23.134521', 'north'))).toBe('WECHAT_BAD_XML');
    expect(badXml(drop(samples.locationEvent, 'Latitude'))).toBe('WECHAT_BAD_XML');
    expect(badXml('not xml at all')).toBe('WECHAT_BAD_XML');
  });
});

describe('dedupKey', () => {
  it('uses MsgId for messages', () => {
    expect(dedupKey(parseMessage(samples.text))).toBe('1234567890123456');
  });

  it('uses FromUserName:CreateTime:Event for events', () => {
    expect(dedupKey(parseMessage(samples.subscribe))).toBe('FromUser:123456789:subscribe');
    expect(dedupKey(parseMessage(samples.click))).toBe('FromUser:123456789:CLICK');
    expect(dedupKey(parseMessage(samples.templateJob))).toBe(
      'oia2TjuEGTNoeX76QEjQNrcURxG8:1395658920:TEMPLATESENDJOBFINISH',
    );
  });

  it('falls back to FromUserName:CreateTime:MsgType for a message without MsgId', () => {
    const xml = samples.text.replace(/<MsgId>.*?<\/MsgId>/, '');
    expect(dedupKey(parseMessage(xml))).toBe('fromUser:1348831860:text');
  });

  it('gives the same key to a retried push and different keys to different pushes', () => {
    expect(dedupKey(parseMessage(samples.click))).toBe(dedupKey(parseMessage(samples.click)));
    expect(dedupKey(parseMessage(samples.click))).not.toBe(dedupKey(parseMessage(samples.view)));
  });
});
