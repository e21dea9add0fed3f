import type { Logger } from '@moltage/core';
import { splitReply, type WeChatMessage } from '@moltage/wechat';
import type { Redis } from 'ioredis';
import { type JournalEvent, type MessageRoute, pushSummary, replyPreview } from '../domain/admin-messages.js';
import { MAX_TEXT_BYTES } from '../domain/reply-plan.js';
import { T } from '../domain/texts.js';
import { keys } from '../keys.js';

/** Entries kept in `console:messages` (approximately: `XADD MAXLEN ~`). */
export const CONSOLE_LOG_MAXLEN = 2000;

/**
 * The console's record of recent traffic (README → Console), written only while the console is
 * enabled: `console:messages` (a capped stream of pushes — accepted or recognised as a retry —
 * and agent replies), `console:users` (openid → last push time) and `console:last` (openid → the
 * last push's summary). Writes never delay or fail the caller: they are not awaited and their
 * errors are only logged. Previews are short and secret-free (see `pushSummary`).
 */
export class ConsoleJournal {
  constructor(
    private readonly redis: Redis,
    private readonly log: Logger,
    private readonly maxLen = CONSOLE_LOG_MAXLEN,
  ) {}

  /** A push answered `success`: queued (`duplicate` false) or a recognised WeChat retry. */
  push(msg: WeChatMessage, eid: string, at: number, duplicate: boolean): void {
    let summary: ReturnType<typeof pushSummary>;
    try {
      summary = pushSummary(msg);
    } catch (err) {
      this.log.warn({ err }, 'console log: cannot summarise a push');
      return;
    }
    const { kind, preview, route } = summary;
    const openid = msg.fromUserName;
    const p = this.redis.pipeline();
    p.xadd(
      keys.consoleMessages(),
      'MAXLEN',
      '~',
      this.maxLen,
      '*',
      't',
      'push',
      'u',
      openid,
      'e',
      eid,
      'at',
      at,
      'k',
      kind,
      'p',
      preview,
      'r',
      route,
      'd',
      duplicate ? '1' : '0',
    );
    if (!duplicate) {
      p.zadd(keys.consoleUsers(), at, openid);
      p.hset(keys.consoleLast(), openid, JSON.stringify({ at, kind, preview }));
    }
    this.#run(p);
  }

  /** An agent reply queued by POST /callback (or a repeat of one). */
  reply(
    openid: string,
    eid: string,
    at: number,
    reply: { text: string; success: boolean; messageId?: string },
    duplicate: boolean,
  ): void {
    const text = reply.success ? reply.text : T.agentFailed;
    // As many customer-service messages as the processor will want for it (before the budget).
    const need = Math.max(1, splitReply(text, MAX_TEXT_BYTES).length);
    const p = this.redis.pipeline();
    p.xadd(
      keys.consoleMessages(),
      'MAXLEN',
      '~',
      this.maxLen,
      '*',
      't',
      'reply',
      'u',
      openid,
      'e',
      eid,
      'at',
      at,
      're',
      reply.messageId ?? '',
      'ok',
      reply.success ? '1' : '0',
      'p',
      reply.success ? replyPreview(reply.text) : '',
      'n',
      need,
      'd',
      duplicate ? '1' : '0',
    );
    this.#run(p);
  }

  #run(p: ReturnType<Redis['pipeline']>): void {
    p.exec()
      .then((results) => {
        const err = results?.find(([e]) => e)?.[0];
        if (err) this.log.warn({ err: { message: err.message } }, 'console log write failed');
      })
      .catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'console log write failed'));
  }

  /** The newest `count` events, newest first. */
  async recent(count: number): Promise<JournalEvent[]> {
    const rows = (await this.redis.xrevrange(keys.consoleMessages(), '+', '-', 'COUNT', count)) as [
      string,
      string[],
    ][];
    const out: JournalEvent[] = [];
    for (const [id, flat] of rows) {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string;
      const base = { id, at: Number(f['at'] ?? 0), openid: f['u'] ?? '', eid: f['e'] ?? '' };
      if (!base.openid || !base.eid) continue;
      if (f['t'] === 'push') {
        out.push({
          t: 'push',
          ...base,
          kind: f['k'] ?? '?',
          preview: f['p'] ?? '',
          route: (['command', 'agent', 'event'].includes(f['r'] ?? '') ? f['r'] : 'agent') as MessageRoute,
          duplicate: f['d'] === '1',
        });
      } else if (f['t'] === 'reply') {
        out.push({
          t: 'reply',
          ...base,
          replyTo: f['re'] ? f['re'] : null,
          ok: f['ok'] !== '0',
          preview: f['p'] ?? '',
          need: Math.max(1, Number(f['n'] ?? 1) || 1),
          duplicate: f['d'] === '1',
        });
      }
    }
    return out;
  }

  /** The users with the most recent pushes, newest first, with the total count. */
  async users(count: number): Promise<{ total: number; users: { openid: string; at: number }[] }> {
    const [total, flat] = await Promise.all([
      this.redis.zcard(keys.consoleUsers()),
      this.redis.zrevrange(keys.consoleUsers(), 0, count - 1, 'WITHSCORES'),
    ]);
    const users: { openid: string; at: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2)
      users.push({ openid: flat[i] as string, at: Number(flat[i + 1]) });
    return { total, users };
  }

  /** Summaries of each user's last push. */
  async lastPushes(openids: string[]): Promise<Map<string, { at: number; kind: string; preview: string }>> {
    const out = new Map<string, { at: number; kind: string; preview: string }>();
    if (openids.length === 0) return out;
    const raw = await this.redis.hmget(keys.consoleLast(), ...openids);
    openids.forEach((openid, i) => {
      const v = raw[i];
      if (!v) return;
      try {
        out.set(openid, JSON.parse(v));
      } catch {
        // Not ours: ignore.
      }
    });
    return out;
  }

  /**
   * Adds users that predate the console (their `user:<openid>` exists, no entry in
   * `console:users`) with their last-seen time. Only when the index is empty; looks at about
   * `maxKeys` keys of the database at most (SCAN), so the caller runs it once per process.
   */
  async backfillUsers(maxKeys = 100_000): Promise<number> {
    if ((await this.redis.exists(keys.consoleUsers())) === 1) return 0;
    let cursor = '0';
    let scanned = 0;
    let added = 0;
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', keys.user('*'), 'COUNT', 1000);
      cursor = next;
      scanned += 1000;
      const names = found.filter((k) => !k.includes(':', 'user:'.length));
      if (names.length === 0) continue;
      const values = await this.redis.mget(...names);
      const args: (string | number)[] = [];
      values.forEach((v) => {
        if (!v) return;
        try {
          const u = JSON.parse(v) as { openid?: string; lastSeenAt?: string };
          const at = Date.parse(u.lastSeenAt ?? '');
          if (u.openid && Number.isFinite(at)) args.push(at, u.openid);
        } catch {
          // Not a user record.
        }
      });
      if (args.length) {
        // NX: a push recorded meanwhile is newer than a last-seen time.
        await this.redis.zadd(keys.consoleUsers(), 'NX', ...args);
        added += args.length / 2;
      }
    } while (cursor !== '0' && scanned < maxKeys);
    return added;
  }
}
