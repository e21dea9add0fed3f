import { parseMessage } from '@moltage/wechat';
import { describe, expect, it } from 'vitest';
import { opensServiceWindow, routeMessage } from './route-message.js';
import { T } from './texts.js';

const base =
  '<ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1700000000</CreateTime>';
const msg = (inner: string) => parseMessage(`<xml>${base}${inner}</xml>`);

describe('routeMessage', () => {
  it('routes commands and ordinary text', () => {
    expect(routeMessage(msg('<MsgType>text</MsgType><Content>help</Content><MsgId>1</MsgId>'))).toEqual({
      kind: 'command',
      command: { name: 'help' },
    });
    expect(routeMessage(msg('<MsgType>text</MsgType><Content>写首诗</Content><MsgId>1</MsgId>'))).toEqual({
      kind: 'agent',
      text: '写首诗',
      msgType: 'text',
    });
  });

  it('uses voice recognition as text, else says voice is not supported', () => {
    expect(
      routeMessage(
        msg(
          '<MsgType>voice</MsgType><MediaId>m</MediaId><Recognition>今天天气</Recognition><MsgId>1</MsgId>',
        ),
      ),
    ).toEqual({ kind: 'agent', text: '今天天气', msgType: 'voice' });
    expect(routeMessage(msg('<MsgType>voice</MsgType><MediaId>m</MediaId><MsgId>1</MsgId>'))).toEqual({
      kind: 'answer',
      text: T.voiceUnsupported,
    });
  });

  it('describes image, link and location for the agent', () => {
    const image = routeMessage(
      msg('<MsgType>image</MsgType><PicUrl>http://p/x.jpg</PicUrl><MediaId>m</MediaId><MsgId>1</MsgId>'),
    );
    expect(image).toMatchObject({ kind: 'agent', msgType: 'image' });
    expect(image.kind === 'agent' && image.text).toContain('http://p/x.jpg');
    const link = routeMessage(
      msg(
        '<MsgType>link</MsgType><Title>标题</Title><Description>说明</Description><Url>https://e.x/a</Url><MsgId>1</MsgId>',
      ),
    );
    expect(link.kind === 'agent' && link.text).toBe('[链接] 标题\n说明\nhttps://e.x/a');
    const loc = routeMessage(
      msg(
        '<MsgType>location</MsgType><Location_X>39.9</Location_X><Location_Y>116.4</Location_Y><Scale>15</Scale><Label>北京</Label><MsgId>1</MsgId>',
      ),
    );
    expect(loc.kind === 'agent' && loc.text).toBe('[位置] 北京（纬度 39.9，经度 116.4）');
  });

  it('routes events', () => {
    expect(routeMessage(msg('<MsgType>event</MsgType><Event>subscribe</Event>'))).toEqual({
      kind: 'subscribe',
    });
    expect(routeMessage(msg('<MsgType>event</MsgType><Event>unsubscribe</Event>'))).toEqual({
      kind: 'unsubscribe',
    });
    expect(
      routeMessage(msg('<MsgType>event</MsgType><Event>CLICK</Event><EventKey>STATUS</EventKey>')),
    ).toEqual({
      kind: 'command',
      command: { name: 'status' },
    });
    expect(
      routeMessage(msg('<MsgType>event</MsgType><Event>CLICK</Event><EventKey>今日推荐</EventKey>')),
    ).toEqual({
      kind: 'agent',
      text: '[菜单] 今日推荐',
      msgType: 'event',
    });
    expect(
      routeMessage(msg('<MsgType>event</MsgType><Event>VIEW</Event><EventKey>https://x</EventKey>')).kind,
    ).toBe('ignore');
  });

  it('knows which pushes open a customer-service window', () => {
    expect(opensServiceWindow(msg('<MsgType>text</MsgType><Content>a</Content><MsgId>1</MsgId>'))).toBe(true);
    expect(opensServiceWindow(msg('<MsgType>event</MsgType><Event>subscribe</Event>'))).toBe(true);
    expect(
      opensServiceWindow(msg('<MsgType>event</MsgType><Event>CLICK</Event><EventKey>k</EventKey>')),
    ).toBe(true);
    expect(opensServiceWindow(msg('<MsgType>event</MsgType><Event>unsubscribe</Event>'))).toBe(false);
    expect(
      opensServiceWindow(msg('<MsgType>event</MsgType><Event>VIEW</Event><EventKey>https://x</EventKey>')),
    ).toBe(false);
  });
});
