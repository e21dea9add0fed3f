/** Stable error codes thrown by @moltage/wechat. Callers branch on `err.code`. */
export type WeChatErrorCode =
  | 'WECHAT_BAD_SIGNATURE'
  | 'WECHAT_BAD_XML'
  | 'WECHAT_DECRYPT_FAILED'
  | 'WECHAT_APPID_MISMATCH'
  | 'WECHAT_BAD_AES_KEY'
  | 'WECHAT_HTTP'
  | 'WECHAT_TIMEOUT'
  | 'WECHAT_BAD_ARGUMENT'
  | `WECHAT_API_${number}`;

/** Base class of every error this library throws on purpose. */
export class WeChatError extends Error {
  readonly code: string;
  /** HTTP status of the WeChat API answer, for WECHAT_HTTP errors caused by a non-2xx status. */
  readonly httpStatus?: number;

  constructor(code: string, message: string, options?: { cause?: unknown; httpStatus?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WeChatError';
    this.code = code;
    if (options?.httpStatus !== undefined) this.httpStatus = options.httpStatus;
  }
}

/** The WeChat API answered with `errcode != 0`. `code` is `WECHAT_API_<errcode>`. */
export class WeChatApiError extends WeChatError {
  readonly errcode: number;
  readonly errmsg: string;

  constructor(errcode: number, errmsg: string, path?: string) {
    super(
      `WECHAT_API_${errcode}`,
      `WeChat API ${path ? `${path} ` : ''}failed: errcode ${errcode} (${errmsg})`,
    );
    this.name = 'WeChatApiError';
    this.errcode = errcode;
    this.errmsg = errmsg;
  }
}

export function isWeChatError(err: unknown): err is WeChatError {
  return err instanceof WeChatError;
}
