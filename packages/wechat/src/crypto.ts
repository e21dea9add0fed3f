import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { WeChatError } from './errors.js';
import { checkMsgSignature, sha1Signature } from './signature.js';
import { parseXml } from './xml.js';

/** WeChat pads to a multiple of 32 bytes (PKCS#7 with a 32-byte block), not AES's 16. */
const PAD_BLOCK_BYTES = 32;
const RANDOM_BYTES = 16;
const LENGTH_BYTES = 4;
const AES_KEY_RE = /^[A-Za-z0-9+/]{43}$/;
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export interface WXBizMsgCryptOptions {
  /** The Token configured in the Official Account console (also used for msg_signature). */
  token: string;
  /** The 43-character EncodingAESKey from the console. */
  encodingAesKey: string;
  /** The AppID; decrypted messages must carry it. */
  appId: string;
}

/** Decodes an EncodingAESKey into the 32-byte AES key, or throws WECHAT_BAD_AES_KEY. */
export function decodeAesKey(encodingAesKey: string): Buffer {
  if (typeof encodingAesKey !== 'string' || !AES_KEY_RE.test(encodingAesKey)) {
    throw new WeChatError(
      'WECHAT_BAD_AES_KEY',
      'EncodingAESKey must be 43 characters of base64 (A-Z, a-z, 0-9, +, /)',
    );
  }
  const key = Buffer.from(`${encodingAesKey}=`, 'base64');
  if (key.length !== 32) {
    throw new WeChatError('WECHAT_BAD_AES_KEY', 'EncodingAESKey does not decode to 32 bytes');
  }
  return key;
}

/** Whether a string is a usable EncodingAESKey (for config validation). */
export function isValidEncodingAesKey(value: string): boolean {
  try {
    decodeAesKey(value);
    return true;
  } catch {
    return false;
  }
}

function pkcs7Pad(data: Buffer): Buffer {
  const n = PAD_BLOCK_BYTES - (data.length % PAD_BLOCK_BYTES);
  return Buffer.concat([data, Buffer.alloc(n, n)]);
}

function decryptFailed(message: string, cause?: unknown): WeChatError {
  return new WeChatError('WECHAT_DECRYPT_FAILED', message, cause === undefined ? undefined : { cause });
}

/**
 * WeChat's message encryption ("safe mode" / 安全模式 and compatible mode): AES-256-CBC with
 * key = base64(EncodingAESKey + '='), IV = key[0..16], PKCS#7 padding to 32-byte blocks, over
 * 16 random bytes ‖ uint32 BE xml length ‖ xml ‖ appid.
 */
export class WXBizMsgCrypt {
  readonly appId: string;
  readonly #token: string;
  readonly #key: Buffer;
  readonly #iv: Buffer;

  constructor(opts: WXBizMsgCryptOptions) {
    this.#key = decodeAesKey(opts.encodingAesKey);
    this.#iv = this.#key.subarray(0, 16);
    this.#token = opts.token;
    this.appId = opts.appId;
  }

  /** Encrypts an XML message; returns base64. `random16` (16 bytes) is for reproducible tests only. */
  encrypt(plainXml: string, random16?: Buffer): string {
    const random = random16 ?? randomBytes(RANDOM_BYTES);
    if (!Buffer.isBuffer(random) || random.length !== RANDOM_BYTES) {
      throw new WeChatError('WECHAT_BAD_ARGUMENT', 'random prefix must be exactly 16 bytes');
    }
    const xml = Buffer.from(plainXml, 'utf8');
    const length = Buffer.alloc(LENGTH_BYTES);
    length.writeUInt32BE(xml.length, 0);
    const plain = pkcs7Pad(Buffer.concat([random, length, xml, Buffer.from(this.appId, 'utf8')]));
    const cipher = createCipheriv('aes-256-cbc', this.#key, this.#iv);
    cipher.setAutoPadding(false);
    return Buffer.concat([cipher.update(plain), cipher.final()]).toString('base64');
  }

  /**
   * Decrypts a base64 `Encrypt` value to the inner XML. Throws WECHAT_DECRYPT_FAILED on bad
   * base64, length, padding, framing or UTF-8, and WECHAT_APPID_MISMATCH when the message was
   * encrypted for another AppID.
   */
  decrypt(encryptedB64: string): string {
    if (typeof encryptedB64 !== 'string' || encryptedB64.length === 0) {
      throw decryptFailed('ciphertext is empty');
    }
    // Strict base64: Buffer.from skips what is not base64, so the canonical re-encoding must give
    // the input back (cheaper than a regular expression over the whole ciphertext).
    const data = Buffer.from(encryptedB64, 'base64');
    if (encryptedB64.length % 4 !== 0 || data.toString('base64') !== encryptedB64) {
      throw decryptFailed('ciphertext is not valid base64');
    }
    if (data.length === 0 || data.length % 16 !== 0) {
      throw decryptFailed('ciphertext length is not a multiple of the AES block size');
    }
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-cbc', this.#key, this.#iv);
      decipher.setAutoPadding(false);
      plain = Buffer.concat([decipher.update(data), decipher.final()]);
    } catch (err) {
      throw decryptFailed('AES decryption failed', err);
    }
    const pad = plain[plain.length - 1] ?? 0;
    if (pad < 1 || pad > PAD_BLOCK_BYTES || pad > plain.length) {
      throw decryptFailed('bad padding (wrong key or tampered ciphertext)');
    }
    for (let i = plain.length - pad; i < plain.length; i++) {
      if (plain[i] !== pad) throw decryptFailed('bad padding (wrong key or tampered ciphertext)');
    }
    const body = plain.subarray(0, plain.length - pad);
    if (body.length < RANDOM_BYTES + LENGTH_BYTES) {
      throw decryptFailed('decrypted message is too short');
    }
    const xmlLength = body.readUInt32BE(RANDOM_BYTES);
    const xmlStart = RANDOM_BYTES + LENGTH_BYTES;
    if (xmlLength > body.length - xmlStart) {
      throw decryptFailed('decrypted message length field is out of range');
    }
    let xml: string;
    let appId: string;
    try {
      xml = utf8Strict.decode(body.subarray(xmlStart, xmlStart + xmlLength));
      appId = utf8Strict.decode(body.subarray(xmlStart + xmlLength));
    } catch (err) {
      throw decryptFailed('decrypted message is not valid UTF-8', err);
    }
    if (appId !== this.appId) {
      throw new WeChatError('WECHAT_APPID_MISMATCH', 'message was encrypted for a different AppID');
    }
    return xml;
  }

  /** msg_signature over token, timestamp, nonce and the Encrypt value. */
  signature(timestamp: string, nonce: string, encrypt: string): string {
    return sha1Signature(this.#token, timestamp, nonce, encrypt);
  }

  /** Builds the encrypted passive-reply envelope WeChat expects in safe mode. */
  encryptReply(replyXml: string, timestamp: string, nonce: string, random16?: Buffer): string {
    const encrypt = this.encrypt(replyXml, random16);
    const msgSignature = this.signature(timestamp, nonce, encrypt);
    return (
      `<xml><Encrypt><![CDATA[${encrypt}]]></Encrypt>` +
      `<MsgSignature><![CDATA[${msgSignature}]]></MsgSignature>` +
      `<TimeStamp>${cdataUnlessDigits(timestamp)}</TimeStamp>` +
      `<Nonce><![CDATA[${cdataSafe(nonce)}]]></Nonce></xml>`
    );
  }

  /**
   * Verifies and decrypts a safe-mode push: checks `msg_signature` over the body's `<Encrypt>`
   * (WECHAT_BAD_SIGNATURE), then decrypts it. Returns the inner XML.
   */
  decryptPush(query: { msgSignature: string; timestamp: string; nonce: string }, bodyXml: string): string {
    const encrypt = parseXml(bodyXml)['Encrypt'];
    if (encrypt === undefined || encrypt.length === 0) {
      throw new WeChatError('WECHAT_BAD_XML', 'encrypted push has no <Encrypt> element');
    }
    if (!checkMsgSignature(this.#token, query.timestamp, query.nonce, encrypt, query.msgSignature)) {
      throw new WeChatError('WECHAT_BAD_SIGNATURE', 'msg_signature does not match');
    }
    return this.decrypt(encrypt);
  }
}

function cdataSafe(s: string): string {
  return s.split(']]>').join(']]]]><![CDATA[>');
}

function cdataUnlessDigits(s: string): string {
  return /^\d+$/.test(s) ? s : `<![CDATA[${cdataSafe(s)}]]>`;
}
