/**
 * WeChat API result codes the simulator produces, with the `errmsg` text WeChat sends for them.
 * WeChat appends a request id (` rid: xxxxxxxx-xxxxxxxx-xxxxxxxx`) to every error message;
 * clients must branch on `errcode`, never on the text.
 */
export const ERRMSG: Readonly<Record<number, string>> = {
  [-1]: 'system error',
  0: 'ok',
  40001: 'invalid credential, access_token is invalid or not latest',
  40002: 'invalid grant_type',
  40003: 'invalid openid',
  40007: 'invalid media_id',
  40008: 'invalid message type',
  40013: 'invalid appid',
  40014: 'invalid access_token',
  40125: 'invalid appsecret',
  41001: 'access_token missing',
  41002: 'appid missing',
  41004: 'appsecret missing',
  42001: 'access_token expired',
  43001: 'require GET method',
  43002: 'require POST method',
  44002: 'empty post data',
  44004: 'empty content',
  45002: 'content size out of limit',
  45009: 'reach max api daily quota limit',
  45011: 'api minute-quota reach limit  mustslower  retry next minute',
  45015: 'response out of time limit or subscription is canceled',
  45047: 'out of response count limit',
  45072: 'invalid command',
  47001: 'data format error',
};

/** The JSON body of every WeChat API error (and of `{errcode: 0, errmsg: 'ok'}`). */
export interface WxResult {
  errcode: number;
  errmsg: string;
}

export const WX_OK: WxResult = Object.freeze({ errcode: 0, errmsg: 'ok' });

/** `{errcode, errmsg}` for `code`, with WeChat's request-id suffix when `rid` is given. */
export function wxError(code: number, rid?: string): WxResult {
  if (code === 0) return { ...WX_OK };
  const text = ERRMSG[code] ?? 'simulated error';
  return { errcode: code, errmsg: rid ? `${text} rid: ${rid}` : text };
}
