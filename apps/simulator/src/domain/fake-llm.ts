/**
 * The fake LLM's script: deterministic answers chosen by directives found anywhere in the last
 * user message (agents wrap what the user typed, so directives are searched, not anchored):
 *
 * - no directive: `Echo: <the message without directives>`
 * - `[[fake:fixed=TEXT]]`: exactly TEXT
 * - `[[fake:long=N]]`: N bytes of deterministic prose (paragraphs of sentences); add
 *   `[[fake:lang=zh]]` for Chinese (3-byte characters, padded with ASCII to exactly N bytes)
 * - `[[fake:delay=MS]]`: wait MS before answering (combines with the others)
 * - `[[fake:error=STATUS]]`: answer HTTP STATUS with OpenAI's error JSON
 */

export interface Directives {
  fixed?: string;
  longBytes?: number;
  lang: 'en' | 'zh';
  delayMs: number;
  errorStatus?: number;
  /** Directive names that were present but not understood, or had unusable values. */
  ignored: string[];
}

export type ScriptedAnswer =
  | { kind: 'text'; text: string; delayMs: number; directives: Directives }
  | { kind: 'error'; status: number; delayMs: number; directives: Directives };

export const MAX_LONG_BYTES = 1_000_000;
export const MAX_DELAY_MS = 600_000;

const DIRECTIVE_RE = /\[\[fake:([A-Za-z_]+)(?:=((?:(?!\]\])[\s\S])*))?\]\]/g;

/** Finds every directive in `text`; returns them and the text with the directives removed. */
export function parseDirectives(text: string): { directives: Directives; rest: string } {
  const d: Directives = { lang: 'en', delayMs: 0, ignored: [] };
  const rest = text.replace(DIRECTIVE_RE, (_m, rawName: string, rawValue: string | undefined) => {
    const name = rawName.toLowerCase();
    const value = rawValue ?? '';
    const int = /^\d{1,9}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
    switch (name) {
      case 'fixed':
        d.fixed = value;
        break;
      case 'long':
        if (int >= 0 && int <= MAX_LONG_BYTES) d.longBytes = int;
        else d.ignored.push(name);
        break;
      case 'lang':
        if (value === 'zh' || value === 'en') d.lang = value;
        else d.ignored.push(name);
        break;
      case 'delay':
        if (int >= 0 && int <= MAX_DELAY_MS) d.delayMs += int;
        else d.ignored.push(name);
        break;
      case 'error':
        if (int >= 400 && int <= 599) d.errorStatus = int;
        else d.ignored.push(name);
        break;
      default:
        d.ignored.push(name);
    }
    return '';
  });
  return { directives: d, rest: rest.replace(/[ \t]{2,}/g, ' ').trim() };
}

/** The answer for a conversation whose last user message is `lastUserText` (null: there was none). */
export function scriptAnswer(lastUserText: string | null): ScriptedAnswer {
  const { directives, rest } = parseDirectives(lastUserText ?? '');
  const delayMs = directives.delayMs;
  if (directives.errorStatus !== undefined) {
    return { kind: 'error', status: directives.errorStatus, delayMs, directives };
  }
  let text: string;
  if (directives.fixed !== undefined) text = directives.fixed;
  else if (directives.longBytes !== undefined) text = longText(directives.longBytes, directives.lang);
  else text = lastUserText === null ? 'Echo: (no user message)' : `Echo: ${rest}`;
  return { kind: 'text', text, delayMs, directives };
}

/** mulberry32: a small deterministic PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EN_WORDS = (
  'the a small agent quietly reads every message and answers with care while the virtual machine ' +
  'keeps its files safe on a private disk so that each user can return later and find their work ' +
  'exactly where they left it because reliable systems remember what matters and forget nothing ' +
  'important about the people who trust them with questions ideas plans drafts notes and code'
).split(' ');
const ZH_WORDS = (
  '智能 助手 认真 阅读 每一条 消息 然后 仔细 回答 虚拟机 保存 文件 用户 随时 回来 继续 工作 ' +
  '系统 可靠 记住 重要 事情 问题 想法 计划 草稿 笔记 代码 安全 稳定 简单 清楚'
).split(' ');

function sentence(rand: () => number, lang: 'en' | 'zh'): string {
  const words = lang === 'zh' ? ZH_WORDS : EN_WORDS;
  const n = 6 + Math.floor(rand() * 9);
  const picked: string[] = [];
  for (let i = 0; i < n; i++) picked.push(words[Math.floor(rand() * words.length)] ?? words[0]!);
  if (lang === 'zh') return `${picked.join('')}。`;
  const s = picked.join(' ');
  return `${s.charAt(0).toUpperCase()}${s.slice(1)}.`;
}

/**
 * Exactly `bytes` bytes of UTF-8 prose, the same for the same arguments: paragraphs (blank line
 * between) of 3–6 sentences. The text is cut on a character boundary and padded with `.`.
 */
export function longText(bytes: number, lang: 'en' | 'zh' = 'en'): string {
  const rand = prng(bytes * 2 + (lang === 'zh' ? 1 : 0));
  const paragraphs: string[] = [];
  let size = 0;
  while (size < bytes) {
    const count = 3 + Math.floor(rand() * 4);
    const ss: string[] = [];
    for (let i = 0; i < count; i++) ss.push(sentence(rand, lang));
    const p = ss.join(lang === 'zh' ? '' : ' ');
    paragraphs.push(p);
    size += Buffer.byteLength(p, 'utf8') + 2;
  }
  const full = Buffer.from(paragraphs.join('\n\n'), 'utf8');
  let end = Math.min(bytes, full.length);
  // Back up to the start of a UTF-8 character (continuation bytes are 10xxxxxx).
  while (end > 0 && end < full.length && ((full[end] ?? 0) & 0xc0) === 0x80) end -= 1;
  const cut = full.subarray(0, end).toString('utf8');
  return cut + '.'.repeat(bytes - end);
}

/**
 * Splits `text` into streaming deltas of about `maxChars` code points, preferring to break after
 * whitespace. Joining the pieces gives back `text` exactly.
 */
export function chunkText(text: string, maxChars = 24): string[] {
  const cps = Array.from(text);
  const out: string[] = [];
  let cur = '';
  let n = 0;
  for (const cp of cps) {
    cur += cp;
    n += 1;
    if (n >= maxChars || (n >= maxChars / 2 && /\s/.test(cp))) {
      out.push(cur);
      cur = '';
      n = 0;
    }
  }
  if (cur !== '') out.push(cur);
  return out;
}

/** Rough token count for `usage` (about 4 bytes per token). */
export function approxTokens(text: string): number {
  return text === '' ? 0 : Math.max(1, Math.ceil(Buffer.byteLength(text, 'utf8') / 4));
}

function partsText(content: unknown): string | null {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return null;
  const texts: string[] = [];
  for (const part of content) {
    if (part && typeof part === 'object') {
      const p = part as Record<string, unknown>;
      if (
        typeof p['text'] === 'string' &&
        (p['type'] === 'text' || p['type'] === 'input_text' || p['type'] === undefined)
      ) {
        texts.push(p['text']);
      }
    } else if (typeof part === 'string') {
      texts.push(part);
    }
  }
  return texts.length > 0 ? texts.join('\n') : null;
}

/** Text of the last `role: "user"` message of a Chat Completions `messages` array. */
export function lastUserTextOfChat(messages: unknown): string | null {
  if (!Array.isArray(messages)) return null;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as Record<string, unknown> | null;
    if (!m || typeof m !== 'object' || m['role'] !== 'user') continue;
    const text = partsText(m['content']) ?? '';
    // OpenClaw appends its own internal context as a trailing user message; the person's words
    // (and any [[fake:…]] directives in them) are in the user message before it.
    if (text.startsWith(AGENT_INTERNAL_CONTEXT_MARKER)) continue;
    return personText(text);
  }
  return null;
}

/**
 * OpenClaw wraps the person's words in its own envelope (a `Conversation info` block before,
 * a `Runtime:` line after). The fake model answers the words themselves, so a demo user reads
 * `Echo: 你好` rather than an echo of the agent's bookkeeping.
 */
export function personText(text: string): string {
  return text.replace(OPENCLAW_ENVELOPE_HEAD, '').replace(OPENCLAW_ENVELOPE_TAIL, '');
}
const OPENCLAW_ENVELOPE_HEAD =
  /^(?:\[[^\]\n]*\] )?Conversation info: ⟦openclaw:ctx⟧\n```json\n[\s\S]*?\n```\n\n/;
const OPENCLAW_ENVELOPE_TAIL = /\n\nRuntime: [^\n]*$/;

/** How OpenClaw starts the user message it adds with its own context. */
export const AGENT_INTERNAL_CONTEXT_MARKER = '<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>';

/** Text of the last user input of a Responses API `input` (a string, or a list of items). */
export function lastUserTextOfResponsesInput(input: unknown): string | null {
  if (typeof input === 'string') return personText(input);
  if (!Array.isArray(input)) return null;
  for (let i = input.length - 1; i >= 0; i--) {
    const item = input[i] as Record<string, unknown> | null;
    if (!item || typeof item !== 'object') continue;
    const isMessage = item['type'] === undefined || item['type'] === 'message';
    if (isMessage && item['role'] === 'user') return personText(partsText(item['content']) ?? '');
  }
  return null;
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** OpenAI's error JSON for an HTTP status. */
export function openAiError(status: number, detail?: string): OpenAiErrorBody {
  const e = (message: string, type: string, code: string | null): OpenAiErrorBody => ({
    error: { message: detail ?? message, type, param: null, code },
  });
  switch (status) {
    case 400:
      return e('Bad request (simulated).', 'invalid_request_error', null);
    case 401:
      return e(
        'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.',
        'invalid_request_error',
        'invalid_api_key',
      );
    case 403:
      return e('You are not allowed to sample from this model (simulated).', 'invalid_request_error', null);
    case 404:
      return e(
        'The model does not exist or you do not have access to it.',
        'invalid_request_error',
        'model_not_found',
      );
    case 429:
      return e('Rate limit reached for requests (simulated).', 'requests', 'rate_limit_exceeded');
    case 500:
      return e(
        'The server had an error while processing your request. Sorry about that!',
        'server_error',
        null,
      );
    case 503:
      return e('The engine is currently overloaded, please try again later.', 'server_error', null);
    default:
      return status >= 500
        ? e(`Upstream error ${status} (simulated).`, 'server_error', null)
        : e(`Request failed with status ${status} (simulated).`, 'invalid_request_error', null);
  }
}
