import { z } from 'zod';

export const MODES = ['plaintext', 'compatible', 'safe'] as const;
/** Message encryption mode (消息加解密方式): 明文模式, 兼容模式, 安全模式. */
export type Mode = (typeof MODES)[number];

/** The fake Official Account the simulator plays. */
export interface AccountConfig {
  appId: string;
  appSecret: string;
  /** The Token configured for message pushes (signatures). */
  token: string;
  /** 43-character EncodingAESKey; required for compatible and safe mode. */
  encodingAesKey?: string;
  mode: Mode;
  /** Where pushes go (the bridge's `/wechat`); without it user messages are recorded but not delivered. */
  bridgeUrl?: string;
  /** The account's original id (原始ID), the ToUserName of every push. */
  originalId: string;
}

/** What WeChat's console accepts for each field. */
export const accountFields = {
  appId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'appId must be 1-64 letters, digits, _ or -'),
  appSecret: z.string().regex(/^[\x21-\x7e]{1,128}$/, 'appSecret must be 1-128 printable ASCII characters'),
  token: z
    .string()
    .regex(/^[A-Za-z0-9]{3,32}$/, 'token must be 3-32 English letters or digits (as WeChat requires)'),
  encodingAesKey: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}$/, 'encodingAesKey must be 43 characters of base64 (as WeChat generates)'),
  mode: z.enum(MODES),
  bridgeUrl: z.url({ protocol: /^https?$/, error: 'bridgeUrl must be an http(s) URL' }),
  originalId: z.string().regex(/^gh_[A-Za-z0-9]{1,32}$/, 'originalId must look like gh_0123456789ab'),
};

/** A change to the account through the JSON API; `null` removes an optional field. */
export const accountPatchSchema = z
  .object({
    appId: accountFields.appId,
    appSecret: accountFields.appSecret,
    token: accountFields.token,
    encodingAesKey: accountFields.encodingAesKey.nullable(),
    mode: accountFields.mode,
    bridgeUrl: accountFields.bridgeUrl.nullable(),
    originalId: accountFields.originalId,
  })
  .partial()
  .strict();
export type AccountPatch = z.infer<typeof accountPatchSchema>;

/** Problems with a complete account, as sentences (empty when it is usable). */
export function accountProblems(a: AccountConfig): string[] {
  const problems: string[] = [];
  const check = (name: keyof typeof accountFields, value: unknown) => {
    if (value === undefined) return;
    const r = accountFields[name].safeParse(value);
    if (!r.success) problems.push(r.error.issues[0]?.message ?? `${name} is invalid`);
  };
  for (const name of Object.keys(accountFields) as (keyof typeof accountFields)[]) check(name, a[name]);
  if (a.mode !== 'plaintext' && !a.encodingAesKey) problems.push(`${a.mode} mode needs an encodingAesKey`);
  return problems;
}

export function applyAccountPatch(a: AccountConfig, patch: AccountPatch): AccountConfig {
  const next: AccountConfig = { ...a };
  for (const [k, v] of Object.entries(patch) as [keyof AccountConfig, unknown][]) {
    if (v === undefined) continue;
    if (v === null) delete next[k];
    else (next as unknown as Record<string, unknown>)[k] = v;
  }
  return next;
}

/** Hides most of a secret: `abc…yz`, or `***` when short. */
export function mask(secret: string | undefined): string | null {
  if (secret === undefined) return null;
  return secret.length <= 8 ? '***' : `${secret.slice(0, 3)}…${secret.slice(-2)}`;
}

/** The account as the JSON API and the chat page show it: secrets masked. */
export interface PublicAccount {
  appId: string;
  appSecret: string | null;
  token: string | null;
  encodingAesKey: string | null;
  mode: Mode;
  bridgeUrl: string | null;
  originalId: string;
}

export function publicAccount(a: AccountConfig): PublicAccount {
  return {
    appId: a.appId,
    appSecret: mask(a.appSecret),
    token: mask(a.token),
    encodingAesKey: mask(a.encodingAesKey),
    mode: a.mode,
    bridgeUrl: a.bridgeUrl ?? null,
    originalId: a.originalId,
  };
}
