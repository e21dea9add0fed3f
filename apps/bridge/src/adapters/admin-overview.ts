import { HostDirectory } from '@moltage/core';
import { DEFAULT_TOKEN_KEY_PREFIX, RedisTokenCache, tokenLockKey } from '@moltage/wechat';
import type { Redis } from 'ioredis';
import { displayUrl } from '../domain/address-policy.js';
import { buildMessageRows, entriesToRead, type MessageRow } from '../domain/admin-messages.js';
import { CONSUMER_GROUP, keys } from '../keys.js';
import type { Metrics } from '../metrics.js';
import type { AdminOrchestratorClient, ConsoleVm, Probe } from './admin-orchestrator.js';
import { probeHealth } from './admin-orchestrator.js';
import type { ConsoleJournal } from './console-journal.js';
import { errText } from './orchestrator-client.js';
import type { RedisQueue } from './queue.js';
import type { UserRecord } from './user-store.js';

/** Rows per view. */
export const CONSOLE_LIMITS = { users: 100, messages: 50, vms: 500, events: 600 } as const;

export interface UserRow {
  openid: string;
  subscribed: boolean | null;
  /** The user's own OpenClaw (URL without query; the token is never shown) or null for the platform VM. */
  boundUrl: string | null;
  boundAt: string | null;
  lastPush: { at: number; kind: string; preview: string } | null;
  lastSeenAt: string | null;
  createdAt: string | null;
  sshKeys: number;
  vm: ConsoleVm | null;
}

export interface HealthView {
  bridge: {
    ok: boolean;
    error: string | null;
    redisMs: number | null;
    queue: { depth: number; pending: number } | null;
    /** Bridge processes reading the queue (consumers of the `bridge` group). */
    processes: number | null;
    uptimeS: number;
  };
  orchestrator: Probe;
  /** The hosts in the host registry (several orchestrators); empty with a single one. */
  hosts: {
    id: string;
    url: string;
    accepting: boolean;
    problem: string | null;
    activeVms: number;
    maxVms: number;
    memAvailableMib: number;
    heartbeatAt: string;
  }[];
  /** Null when SSH_GATEWAY_STATUS_URL is not set. */
  sshGateway: Probe | null;
  wechat: {
    appId: string;
    apiBase: string;
    /** The shared access token: whether one is cached and until when (never the token). */
    token: { cached: boolean; expiresAt: number | null; refreshing: boolean } | null;
    tokenError: string | null;
    /** WeChat API errors seen by this process, by errcode. */
    errors: { errcode: string; count: number }[];
  };
}

export interface Overview {
  now: number;
  health: HealthView;
  users: { total: number; rows: UserRow[] };
  vms: { rows: ConsoleVm[]; total: number; error: string | null };
  messages: MessageRow[];
}

export interface OverviewSources {
  redis: Redis;
  journal: ConsoleJournal;
  queue: RedisQueue;
  orchestrator: AdminOrchestratorClient;
  metrics: Metrics;
  appId: string;
  apiBase: string;
  sshGatewayStatusUrl: string | undefined;
  now: () => number;
  startedAt: number;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Everything the console shows, read fresh on each request: Redis (users, console log, ledgers,
 * inboxes, waits, the access token's metadata), the orchestrator (VMs, health) and the SSH
 * gateway's status port. A part that fails is shown as failed; the rest still loads.
 */
export class OverviewLoader {
  #backfilled: Promise<unknown> | null = null;

  constructor(private readonly src: OverviewSources) {}

  async load(): Promise<Overview> {
    const s = this.src;
    this.#backfilled ??= s.journal.backfillUsers().catch(() => 0);
    await this.#backfilled;
    const [health, vms, events, index] = await Promise.all([
      this.#health(),
      s.orchestrator.list().then(
        (rows) => ({ rows, error: null as string | null }),
        (err) => ({ rows: [] as ConsoleVm[], error: errText(err) }),
      ),
      s.journal.recent(CONSOLE_LIMITS.events),
      s.journal.users(CONSOLE_LIMITS.users),
    ]);
    const vmByUser = new Map(vms.rows.map((v) => [v.user_id, v]));
    const [users, messages] = await Promise.all([
      this.#users(
        index.users.map((u) => u.openid),
        vmByUser,
      ),
      this.#messages(events),
    ]);
    return {
      now: s.now(),
      health,
      users: { total: index.total, rows: users },
      vms: {
        rows: [...vms.rows]
          .sort((a, b) => stateRank(a.state) - stateRank(b.state) || a.user_id.localeCompare(b.user_id))
          .slice(0, CONSOLE_LIMITS.vms),
        total: vms.rows.length,
        error: vms.error,
      },
      messages,
    };
  }

  async #users(openids: string[], vmByUser: Map<string, ConsoleVm>): Promise<UserRow[]> {
    if (openids.length === 0) return [];
    const [records, last] = await Promise.all([
      this.src.redis.mget(...openids.map((id) => keys.user(id))),
      this.src.journal.lastPushes(openids),
    ]);
    return openids.map((openid, i) => {
      let user: UserRecord | null = null;
      try {
        user = records[i] ? (JSON.parse(records[i] as string) as UserRecord) : null;
      } catch {
        user = null;
      }
      return {
        openid,
        subscribed: user ? user.subscribed : null,
        boundUrl: user?.binding ? displayUrl(user.binding.url) : null,
        boundAt: user?.binding?.boundAt ?? null,
        lastPush: last.get(openid) ?? null,
        lastSeenAt: user?.lastSeenAt ?? null,
        createdAt: user?.createdAt ?? null,
        sshKeys: user?.ssh?.publicKeys?.length ?? 0,
        vm: vmByUser.get(openid) ?? null,
      };
    });
  }

  async #messages(events: Awaited<ReturnType<ConsoleJournal['recent']>>): Promise<MessageRow[]> {
    const { eids, openids } = entriesToRead(events, CONSOLE_LIMITS.messages);
    const p = this.src.redis.pipeline();
    for (const eid of eids) p.hgetall(keys.ledger(eid));
    for (const openid of openids) {
      p.xrange(keys.inbox(openid), '-', '+', 'COUNT', 200);
      p.hkeys(keys.waits(openid));
    }
    const res = (await p.exec()) ?? [];
    const ledgers = new Map<string, Record<string, string>>();
    eids.forEach((eid, i) => {
      const [err, v] = res[i] ?? [null, {}];
      ledgers.set(eid, !err && v && typeof v === 'object' ? (v as Record<string, string>) : {});
    });
    const inInbox = new Set<string>();
    const waiting = new Set<string>();
    openids.forEach((_, j) => {
      const [xErr, rows] = res[eids.length + 2 * j] ?? [null, []];
      if (!xErr && Array.isArray(rows)) {
        for (const [, flat] of rows as [string, string[]][]) {
          const idx = flat.indexOf('eid');
          if (idx >= 0 && flat[idx + 1]) inInbox.add(flat[idx + 1] as string);
        }
      }
      const [wErr, w] = res[eids.length + 2 * j + 1] ?? [null, []];
      if (!wErr && Array.isArray(w)) for (const eid of w as string[]) waiting.add(eid);
    });
    return buildMessageRows(events, { ledgers, inInbox, waiting }, CONSOLE_LIMITS.messages);
  }

  async #health(): Promise<HealthView> {
    const s = this.src;
    const bridge = (async (): Promise<HealthView['bridge']> => {
      const uptimeS = Math.round((s.now() - s.startedAt) / 1000);
      try {
        const t0 = performance.now();
        await withTimeout(s.redis.ping(), 2000, 'Redis');
        const redisMs = Math.round((performance.now() - t0) * 10) / 10;
        const [queue, consumers] = await Promise.all([
          withTimeout(s.queue.stats(), 2000, 'queue'),
          withTimeout(
            s.redis.xinfo('CONSUMERS', keys.ready(), CONSUMER_GROUP) as Promise<unknown[]>,
            2000,
            'queue',
          ).catch(() => null),
        ]);
        return {
          ok: true,
          error: null,
          redisMs,
          queue,
          processes: consumers ? activeConsumers(consumers) : null,
          uptimeS,
        };
      } catch (err) {
        return { ok: false, error: errText(err), redisMs: null, queue: null, processes: null, uptimeS };
      }
    })();
    const wechat = (async (): Promise<HealthView['wechat']> => {
      const errors = ((await s.metrics.wechatErrors.get()).values ?? [])
        .map((v) => ({ errcode: String(v.labels['errcode'] ?? '?'), count: v.value }))
        .filter((v) => v.count > 0);
      let host = s.apiBase;
      try {
        host = new URL(s.apiBase).host;
      } catch {
        // Shown as configured.
      }
      try {
        const [cached, lock] = await Promise.all([
          new RedisTokenCache(s.redis).get(s.appId),
          s.redis.exists(tokenLockKey(DEFAULT_TOKEN_KEY_PREFIX, s.appId)),
        ]);
        return {
          appId: s.appId,
          apiBase: host,
          token: { cached: cached !== null, expiresAt: cached?.expiresAt ?? null, refreshing: lock === 1 },
          tokenError: null,
          errors,
        };
      } catch (err) {
        return { appId: s.appId, apiBase: host, token: null, tokenError: errText(err), errors };
      }
    })();
    const hosts = new HostDirectory(s.redis)
      .live()
      .then((list) =>
        list
          .map((h) => ({
            id: h.host_id,
            url: h.url,
            accepting: h.accepting,
            problem: h.problem,
            activeVms: h.active_vms,
            maxVms: h.max_vms,
            memAvailableMib: h.mem_available_mib,
            heartbeatAt: h.heartbeat_at,
          }))
          .sort((a, b) => a.id.localeCompare(b.id)),
      )
      .catch(() => []);
    const [b, orchestrator, hostList, sshGateway, w] = await Promise.all([
      bridge,
      s.orchestrator.health(),
      hosts,
      s.sshGatewayStatusUrl ? probeHealth(`${s.sshGatewayStatusUrl}/health`) : Promise.resolve(null),
      wechat,
    ]);
    return { bridge: b, orchestrator, hosts: hostList, sshGateway, wechat: w };
  }
}

/** Consumers that read the queue within the last two minutes (live bridge processes). */
function activeConsumers(rows: unknown[]): number {
  let n = 0;
  for (const row of rows) {
    if (!Array.isArray(row)) continue;
    const info: Record<string, unknown> = {};
    for (let i = 0; i + 1 < row.length; i += 2) info[String(row[i])] = row[i + 1];
    const idle = Number(info['idle'] ?? Number.POSITIVE_INFINITY);
    if (idle < 120_000) n++;
  }
  return n;
}

function stateRank(state: string): number {
  return ['error', 'creating', 'running', 'stopped'].indexOf(state) + 1 || 9;
}
