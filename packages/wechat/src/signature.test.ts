import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { WXBizMsgCrypt } from './crypto.js';
import { checkMsgSignature, checkSignature, sha1Signature } from './signature.js';

describe('checkSignature (GET /wechat URL check and plaintext pushes)', () => {
  // wechatpy (wechatpy/wechatpy) tests/test_utils.py test_check_signature_should_ok / _should_fail.
  const token = 'test';
  const timestamp = '1410685589';
  const nonce = 'test';

  it('accepts the published signature', () => {
    expect(checkSignature(token, timestamp, nonce, 'f21891de399b4e33a1a93c9a7b8a8fffb5a443ff')).toBe(true);
    expect(sha1Signature(token, timestamp, nonce)).toBe('f21891de399b4e33a1a93c9a7b8a8fffb5a443ff');
  });

  it('accepts uppercase hex of the same digest', () => {
    expect(checkSignature(token, timestamp, nonce, 'F21891DE399B4E33A1A93C9A7B8A8FFFB5A443FF')).toBe(true);
  });

  it('refuses a one-digit change, a truncated, empty or missing signature', () => {
    expect(checkSignature(token, timestamp, nonce, 'f21891de399b4e33a1a93c9a7b8a8fffb5a443fe')).toBe(false);
    expect(checkSignature(token, timestamp, nonce, 'f21891de399b4e33a1a93c9a7b8a8fffb5a443f')).toBe(false);
    expect(checkSignature(token, timestamp, nonce, '')).toBe(false);
    expect(checkSignature(token, timestamp, nonce, undefined as unknown as string)).toBe(false);
    expect(checkSignature(token, timestamp, nonce, `${'f21891de399b4e33a1a93c9a7b8a8fffb5a443ff'}0`)).toBe(
      false,
    );
    expect(checkSignature(token, timestamp, nonce, '中'.repeat(40))).toBe(false);
  });

  it('refuses when any input differs (token, timestamp, nonce)', () => {
    const sig = sha1Signature(token, timestamp, nonce);
    expect(checkSignature('other', timestamp, nonce, sig)).toBe(false);
    expect(checkSignature(token, '1410685590', nonce, sig)).toBe(false);
    expect(checkSignature(token, timestamp, 'test2', sig)).toBe(false);
  });
});

describe('sha1Signature', () => {
  it('sorts the parts before hashing, so argument order does not matter', () => {
    const expected = createHash('sha1').update('abc').digest('hex');
    expect(sha1Signature('c', 'a', 'b')).toBe(expected);
    expect(sha1Signature('b', 'c', 'a')).toBe(expected);
  });

  it('sorts by code unit like WeChat (uppercase before lowercase, digits first)', () => {
    expect(sha1Signature('b', 'B', '1')).toBe(createHash('sha1').update('1Bb').digest('hex'));
  });
});

describe('checkMsgSignature (safe mode)', () => {
  it('accepts the official sample msg_signature', () => {
    const encrypt =
      'hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=';
    expect(
      checkMsgSignature(
        'spamtest',
        '1409735669',
        '1320562132',
        encrypt,
        '5d197aaffba7e9b25a30732f161a50dee96bd5fa',
      ),
    ).toBe(true);
    expect(
      checkMsgSignature(
        'spamtest',
        '1409735669',
        '1320562133',
        encrypt,
        '5d197aaffba7e9b25a30732f161a50dee96bd5fa',
      ),
    ).toBe(false);
  });

  it('accepts the wechatpy echostr signature and the echostr decrypts for that receiver', () => {
    // wechatpy tests/test_crypto.py test_check_signature_should_ok / _should_fail (WeCom URL check).
    const echo = '4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==';
    const sig = 'dd6b9c95b495b3f7e2901bfbc76c664930ffdb96';
    expect(checkMsgSignature('123456', '1411443780', '437374425', echo, sig)).toBe(true);
    expect(checkMsgSignature('123456', '1411443780', '437374424', echo, sig)).toBe(false);
    const c = new WXBizMsgCrypt({
      token: '123456',
      encodingAesKey: 'kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR',
      appId: 'wx49f0ab532d5d035a',
    });
    expect(c.decrypt(echo)).toMatch(/^\d+$/);
  });
});
