import { createCipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeAesKey, isValidEncodingAesKey, WXBizMsgCrypt } from './crypto.js';
import { codeOf } from './error-code.test-helper.js';
import { WeChatError } from './errors.js';
import { parseXml } from './xml.js';

// Vector 1 — Tencent's official WXBizMsgCrypt sample (Python `Sample.py`, shipped with the
// official "消息加解密" download; copy read at charlesXu86/Chatbot_CN Chatbot_Web/impl/weixin/Sample.py).
const official = {
  token: 'spamtest',
  encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  appId: 'wx2c2769f8efd9abc2',
  timestamp: '1409735669',
  nonce: '1320562132',
  msgSignature: '5d197aaffba7e9b25a30732f161a50dee96bd5fa',
  encrypt:
    'hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=',
};
const officialBody =
  '<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId>' +
  `<Encrypt><![CDATA[${official.encrypt}]]></Encrypt></xml>`;

// Vector 2 — WxJava (binarywang/WxJava) weixin-java-common/src/test/java/me/chanjar/weixin/common/
// util/crypto/WxCryptUtilTest.java: fixed random prefix "aaaabbbbccccdddd", published ciphertexts.
const wxjava = {
  token: 'pamtest',
  encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  appId: 'wxb11529c136998cb6',
  random: Buffer.from('aaaabbbbccccdddd', 'utf8'),
  replyMsg: '我是中文abcd123',
  afterAesEncrypt: 'jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==',
  replyMsg2:
    '<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>',
  afterAesEncrypt2:
    'jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb',
};

// Vector 3 — EasyWeChat (w7corp/easywechat) tests/Kernel/EncryptorTest.php `testDecrypt`.
const easywechat = {
  token: 'pamtest',
  encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  appId: 'wxb11529c136998cb6',
  msgSignature: '4f3ad57b6989f09f4eb392acce4f9e93942ed890',
  nonce: '260774613',
  timestamp: '1458300676',
  body: '<xml>\n    <ToUserName><![CDATA[asdasdasd]]></ToUserName>\n    <Encrypt><![CDATA[rTNFcsut4LfGuAFKEUVVpwcaCOTJzOd9twZdIW910jb3k+iicx2uvhttIZ3Qg9Qgty3BEF2xbOrz6boTfb30dMomcgrkTqdFPwnhqbk+kIQ7rZiwny9D7NUrTgA5kpX3KsZvrXzUZyP2x9YOlxbgm572lmxKvM7HAQQhIQ/p6HBmoY30bGXFK0BtIu1pW9TjhOYrLQoU18nWYjWqDA1ynkmOytpv7QRI1P1+0NoxL0q2zO1DgeSvnE8CZGo/o5Ap/WHK5W2RAsinpzN4/LjPnmB6U01I5XCoJoC0GK/yMZycd2Oh8Nq6+wBkC1U85oy0ktOY4nLvsQMLrourmMGdZHuTbqpeJ8Ao/5PRYJ+WBvRUwPfGKBL2+2IKZF49vAJqkcGWSHGE76ZN2erXeuNazf/o9o3lIE3q739o4c8t9QGPe31GT2Go/rOz1BsrASwvauNulCh+++yz+CQzBIuikA==]]></Encrypt>\n</xml>\n',
};

// Vector 4 — wechatpy (wechatpy/wechatpy) tests/test_crypto.py: `test_encrypt_message` with the
// random prefix mocked to "1234567890123456", and `test_decrypt_message` (WeCom corp id as receiver id,
// same algorithm).
const wechatpy = {
  token: '123456',
  encodingAesKey: 'kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR',
  appId: 'wx49f0ab532d5d035a',
  random: Buffer.from('1234567890123456', 'utf8'),
  nonce: '461056294',
  timestamp: '1411525903',
  reply:
    '<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>',
  expectedEncrypt:
    '9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3',
  expectedSignature: '407518b7649e86ef23978113f92d27afa9296533',
  decryptBody:
    '<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>',
  decryptSignature: '74d92dfeb87ba7c714f89d98870ae5eb62dff26d',
};

describe('WXBizMsgCrypt on published vectors', () => {
  it('official sample: checks msg_signature and decrypts the Encrypt value', () => {
    const c = new WXBizMsgCrypt(official);
    const xml = c.decryptPush(
      { msgSignature: official.msgSignature, timestamp: official.timestamp, nonce: official.nonce },
      officialBody,
    );
    expect(parseXml(xml)).toMatchObject({
      ToUserName: 'gh_10f6c3c3ac5a',
      FromUserName: 'oyORnuP8q7ou2gfYjqLzSIWZf0rs',
      CreateTime: '1409735668',
      MsgType: 'text',
      Content: 'abcdteT',
      MsgId: '6054768590064713728',
    });
    expect(c.signature(official.timestamp, official.nonce, official.encrypt)).toBe(official.msgSignature);
  });

  it('official sample: a wrong msg_signature is refused before decryption', () => {
    const c = new WXBizMsgCrypt(official);
    const wrong = `${official.msgSignature.slice(0, -1)}0`;
    expect(
      codeOf(() =>
        c.decryptPush(
          { msgSignature: wrong, timestamp: official.timestamp, nonce: official.nonce },
          officialBody,
        ),
      ),
    ).toBe('WECHAT_BAD_SIGNATURE');
    expect(
      codeOf(() =>
        c.decryptPush(
          { msgSignature: official.msgSignature, timestamp: '1409735670', nonce: official.nonce },
          officialBody,
        ),
      ),
    ).toBe('WECHAT_BAD_SIGNATURE');
  });

  it('WxJava: encrypting with the published random prefix gives the published ciphertexts', () => {
    const c = new WXBizMsgCrypt(wxjava);
    expect(c.encrypt(wxjava.replyMsg, wxjava.random)).toBe(wxjava.afterAesEncrypt);
    expect(c.encrypt(wxjava.replyMsg2, wxjava.random)).toBe(wxjava.afterAesEncrypt2);
    expect(c.decrypt(wxjava.afterAesEncrypt)).toBe(wxjava.replyMsg);
    expect(c.decrypt(wxjava.afterAesEncrypt2)).toBe(wxjava.replyMsg2);
  });

  it('EasyWeChat: verifies and decrypts the published push', () => {
    const c = new WXBizMsgCrypt(easywechat);
    const xml = c.decryptPush(
      { msgSignature: easywechat.msgSignature, timestamp: easywechat.timestamp, nonce: easywechat.nonce },
      easywechat.body,
    );
    expect(parseXml(xml)).toMatchObject({
      ToUserName: 'asdasdasd',
      FromUserName: 'asdasdasdsadasd',
      CreateTime: '1234567898',
      Content: 'hello',
    });
  });

  it('EasyWeChat: the same push under another AppID is WECHAT_APPID_MISMATCH', () => {
    const c = new WXBizMsgCrypt({ ...easywechat, appId: 'invalid-appid' });
    expect(
      codeOf(() =>
        c.decryptPush(
          { msgSignature: easywechat.msgSignature, timestamp: easywechat.timestamp, nonce: easywechat.nonce },
          easywechat.body,
        ),
      ),
    ).toBe('WECHAT_APPID_MISMATCH');
  });

  it('wechatpy: encryptReply with the mocked random prefix gives the published envelope', () => {
    const c = new WXBizMsgCrypt(wechatpy);
    const envelope = parseXml(
      c.encryptReply(wechatpy.reply, wechatpy.timestamp, wechatpy.nonce, wechatpy.random),
    );
    expect(envelope).toEqual({
      Encrypt: wechatpy.expectedEncrypt,
      MsgSignature: wechatpy.expectedSignature,
      TimeStamp: wechatpy.timestamp,
      Nonce: wechatpy.nonce,
    });
    expect(c.decrypt(wechatpy.expectedEncrypt)).toBe(wechatpy.reply);
  });

  it('wechatpy: verifies and decrypts the published push', () => {
    const c = new WXBizMsgCrypt(wechatpy);
    const xml = c.decryptPush(
      { msgSignature: wechatpy.decryptSignature, timestamp: wechatpy.timestamp, nonce: wechatpy.nonce },
      wechatpy.decryptBody,
    );
    expect(parseXml(xml)).toMatchObject({ Content: 'test', FromUserName: 'messense' });
  });
});

describe('WXBizMsgCrypt round trip', () => {
  const c = new WXBizMsgCrypt(wxjava);

  it('decrypts what it encrypted, for empty, ASCII, Chinese and emoji bodies of many lengths', () => {
    const samples = ['', 'a', '<xml/>', '中文'.repeat(37), '😀'.repeat(100), 'x'.repeat(4096)];
    for (let n = 0; n < 70; n++) samples.push('é'.repeat(n));
    for (const s of samples) expect(c.decrypt(c.encrypt(s))).toBe(s);
  });

  it('pads to 32-byte blocks: ciphertext length is a multiple of 32 and padding is never empty', () => {
    // 16 random + 4 length + 12 bytes appid = 32: an empty body needs a whole extra padding block.
    const len = (s: string) => Buffer.from(c.encrypt(s), 'base64').length;
    expect(len('')).toBe(32 + 32);
    for (let n = 0; n < 80; n++) expect(len('a'.repeat(n)) % 32).toBe(0);
  });

  it('uses a fresh random prefix by default', () => {
    expect(c.encrypt('same')).not.toBe(c.encrypt('same'));
  });

  it('encryptReply signs what it encrypts and decryptPush accepts it', () => {
    const reply = c.encryptReply('<xml><Content><![CDATA[hi]]></Content></xml>', '1700000000', 'n0nce');
    const fields = parseXml(reply);
    expect(fields['TimeStamp']).toBe('1700000000');
    expect(fields['Nonce']).toBe('n0nce');
    const inner = c.decryptPush(
      { msgSignature: fields['MsgSignature']!, timestamp: '1700000000', nonce: 'n0nce' },
      reply,
    );
    expect(inner).toBe('<xml><Content><![CDATA[hi]]></Content></xml>');
  });
});

describe('WXBizMsgCrypt failures are typed', () => {
  const c = new WXBizMsgCrypt(wxjava);

  it('a tampered ciphertext only ever yields a string or a typed error', () => {
    const raw = Buffer.from(wxjava.afterAesEncrypt2, 'base64');
    let refused = 0;
    for (let i = 0; i < raw.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const t = Buffer.from(raw);
        t[i] = (t[i]! ^ mask) & 0xff;
        try {
          expect(typeof c.decrypt(t.toString('base64'))).toBe('string');
        } catch (err) {
          expect(err).toBeInstanceOf(WeChatError);
          expect(['WECHAT_DECRYPT_FAILED', 'WECHAT_APPID_MISMATCH']).toContain((err as WeChatError).code);
          refused++;
        }
      }
    }
    // CBC is malleable: flips in the first block only garble the random prefix and flip a bit of
    // the next block, which padding and AppID cannot detect. Everything touching the tail is refused.
    expect(refused).toBeGreaterThan(0);
  });

  it('a tampered Encrypt in a push fails msg_signature (WECHAT_BAD_SIGNATURE)', () => {
    const o = new WXBizMsgCrypt(official);
    const raw = Buffer.from(official.encrypt, 'base64');
    for (let i = 0; i < raw.length; i += 7) {
      const t = Buffer.from(raw);
      t[i] = (t[i]! ^ 0x01) & 0xff;
      const body = officialBody.replace(official.encrypt, t.toString('base64'));
      expect(
        codeOf(() =>
          o.decryptPush(
            { msgSignature: official.msgSignature, timestamp: official.timestamp, nonce: official.nonce },
            body,
          ),
        ),
      ).toBe('WECHAT_BAD_SIGNATURE');
    }
  });

  it('the wrong AppID is WECHAT_APPID_MISMATCH', () => {
    const other = new WXBizMsgCrypt({ ...wxjava, appId: 'wx0000000000000000' });
    expect(codeOf(() => other.decrypt(wxjava.afterAesEncrypt))).toBe('WECHAT_APPID_MISMATCH');
  });

  it('the wrong key is WECHAT_DECRYPT_FAILED', () => {
    const other = new WXBizMsgCrypt({ ...wxjava, encodingAesKey: 'A'.repeat(43) });
    expect(codeOf(() => other.decrypt(wxjava.afterAesEncrypt2))).toBe('WECHAT_DECRYPT_FAILED');
  });

  it('bad padding, framing and UTF-8 are WECHAT_DECRYPT_FAILED', () => {
    // Encrypt hand-built plaintexts with the same key so that only the framing is wrong.
    const key = decodeAesKey(wxjava.encodingAesKey);
    const enc = (plain: Buffer) => {
      const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
      cipher.setAutoPadding(false);
      return Buffer.concat([cipher.update(plain), cipher.final()]).toString('base64');
    };
    const frame = (lengthField: number, xml: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(lengthField);
      return Buffer.concat([Buffer.alloc(16, 1), len, xml, Buffer.from(wxjava.appId)]);
    };
    const body = frame(2, Buffer.from('hi'));
    const n = 32 - (body.length % 32);
    const padded = (pad: Buffer) => enc(Buffer.concat([body, pad]));
    expect(c.decrypt(padded(Buffer.alloc(n, n)))).toBe('hi');
    // last byte 0
    expect(codeOf(() => c.decrypt(padded(Buffer.concat([Buffer.alloc(n - 1, n), Buffer.from([0])]))))).toBe(
      'WECHAT_DECRYPT_FAILED',
    );
    // inconsistent padding bytes
    expect(codeOf(() => c.decrypt(padded(Buffer.concat([Buffer.alloc(n - 1, 7), Buffer.from([n])]))))).toBe(
      'WECHAT_DECRYPT_FAILED',
    );
    // a whole extra block of 33s (pad larger than WeChat's 32-byte block)
    expect(
      codeOf(() => c.decrypt(enc(Buffer.concat([body, Buffer.alloc(n, n), Buffer.alloc(32, 33)])))),
    ).toBe('WECHAT_DECRYPT_FAILED');
    // a length field pointing past the end of the message
    const long = frame(256, Buffer.from('hi'));
    expect(codeOf(() => c.decrypt(enc(Buffer.concat([long, Buffer.alloc(n, n)]))))).toBe(
      'WECHAT_DECRYPT_FAILED',
    );
    // invalid UTF-8 inside the message
    const badUtf8 = frame(2, Buffer.from([0xc3, 0x28]));
    expect(codeOf(() => c.decrypt(enc(Buffer.concat([badUtf8, Buffer.alloc(n, n)]))))).toBe(
      'WECHAT_DECRYPT_FAILED',
    );
    // too short to hold the random prefix and length
    expect(codeOf(() => c.decrypt(enc(Buffer.concat([Buffer.alloc(16, 1), Buffer.alloc(16, 16)]))))).toBe(
      'WECHAT_DECRYPT_FAILED',
    );
  });

  it('bad base64 and bad lengths are WECHAT_DECRYPT_FAILED', () => {
    for (const bad of [
      '',
      '!!!!',
      'abc',
      'a b=',
      'jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmk=',
      '====',
      'QUJD',
      '中文中文',
    ]) {
      expect(codeOf(() => c.decrypt(bad))).toBe('WECHAT_DECRYPT_FAILED');
    }
    expect(codeOf(() => c.decrypt(undefined as unknown as string))).toBe('WECHAT_DECRYPT_FAILED');
  });

  it('a ciphertext with characters Buffer.from would skip or read as base64url is refused', () => {
    const good = c.encrypt('<xml><Content>hi</Content></xml>');
    expect(c.decrypt(good)).toContain('hi');
    const at = 8;
    for (const ch of ['-', '_', '.', ' ', '\n']) {
      const bad = good.slice(0, at) + ch + good.slice(at + 1);
      expect(() => c.decrypt(bad)).toThrow(/not valid base64/);
    }
  });

  it('a push without <Encrypt> or with a malformed body is WECHAT_BAD_XML', () => {
    const q = { msgSignature: 'x', timestamp: '1', nonce: '2' };
    expect(codeOf(() => c.decryptPush(q, '<xml><ToUserName>a</ToUserName></xml>'))).toBe('WECHAT_BAD_XML');
    expect(codeOf(() => c.decryptPush(q, 'not xml'))).toBe('WECHAT_BAD_XML');
  });

  it('an EncodingAESKey that is not 43 base64 characters is WECHAT_BAD_AES_KEY', () => {
    for (const key of [
      '',
      'abc',
      'a'.repeat(42),
      'a'.repeat(44),
      `${'a'.repeat(42)}=`,
      `${'a'.repeat(42)}-`,
      `${'a'.repeat(42)}中`,
    ]) {
      expect(codeOf(() => new WXBizMsgCrypt({ token: 't', encodingAesKey: key, appId: 'a' }))).toBe(
        'WECHAT_BAD_AES_KEY',
      );
      expect(isValidEncodingAesKey(key)).toBe(false);
    }
    expect(isValidEncodingAesKey(wxjava.encodingAesKey)).toBe(true);
  });

  it('a random prefix that is not 16 bytes is refused', () => {
    expect(codeOf(() => c.encrypt('x', Buffer.alloc(15)))).toBe('WECHAT_BAD_ARGUMENT');
  });
});
