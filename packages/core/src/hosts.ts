import type { Redis } from 'ioredis';
import { z } from 'zod';

/**
 * The host registry: every orchestrator (one per KVM host) announces itself in Redis with its
 * API URL and capacity, and refreshes that announcement (a heartbeat) every few seconds. The
 * orchestrator writes it; the bridge and the SSH gateway read it to place new VMs and to reach the
 * host that runs a user's VM. apps/orchestrator/README.md ("Several hosts") documents the keys.
 */

/** A host id: what `HOST_ID` may be (also a safe Redis key and lock-owner component). */
export const HOST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export const hostKeys = {
  /** JSON string with PX (the heartbeat TTL): the host's {@link HostInfo}. Gone = host down. */
  host: (hostId: string) => `host:${hostId}`,
  /** Sorted set: host ids that registered, scored by their last heartbeat (ms). An index only. */
  hosts: () => 'hosts',
  /** The orchestrator's VM record (JSON) of a user; `host_id` names the host that owns the VM. */
  vm: (openid: string) => `vm:${openid}`,
} as const;

/** What an orchestrator announces about its host (`host:<id>`). */
export interface HostInfo {
  host_id: string;
  /** The orchestrator API as the bridge and the gateway reach it (ORCHESTRATOR_PUBLIC_URL). */
  url: string;
  /** False when this host cannot start VMs (no driver, no network): never placed on. */
  accepting: boolean;
  /** Why it does not accept VMs, when it does not. */
  problem: string | null;
  /** VM_SUBNET: distinct per host. */
  subnet: string;
  network: 'user' | 'tap';
  driver: string | null;
  /** MAX_VMS (0 = no limit). */
  max_vms: number;
  /** VMs holding host resources now (creating or running). */
  active_vms: number;
  /** Sum of `mem_mib` of those VMs. */
  vms_mem_mib: number;
  mem_total_mib: number;
  /** MemAvailable of the host. */
  mem_available_mib: number;
  vcpus: number;
  started_at: string;
  heartbeat_at: string;
  /** The key expires this long after each heartbeat unless refreshed. */
  ttl_ms: number;
  /** Changes with every orchestrator process (two processes never share a host id). */
  instance: string;
  /** /etc/machine-id (or the hostname): tells a restart on the same machine from a clash. */
  machine_id: string;
}

const hostInfoSchema = z.looseObject({
  host_id: z.string().regex(HOST_ID_PATTERN),
  url: z.url({ protocol: /^https?$/ }),
  accepting: z.boolean(),
  problem: z.string().nullable().default(null),
  subnet: z.string(),
  network: z.enum(['user', 'tap']),
  driver: z.string().nullable().default(null),
  max_vms: z.number().int().min(0),
  active_vms: z.number().int().min(0),
  vms_mem_mib: z.number().min(0),
  mem_total_mib: z.number().min(0),
  mem_available_mib: z.number().min(0),
  vcpus: z.number().int().min(0),
  started_at: z.string(),
  heartbeat_at: z.string(),
  ttl_ms: z.number().int().min(1),
  instance: z.string(),
  machine_id: z.string(),
});

/** Parses a `host:<id>` value; null when it is missing or not a host announcement. */
export function parseHostInfo(raw: string | null | undefined): HostInfo | null {
  if (!raw) return null;
  try {
    const parsed = hostInfoSchema.safeParse(JSON.parse(raw));
    return parsed.success ? (parsed.data as HostInfo) : null;
  } catch {
    return null;
  }
}

/** VM slots left on a host (Infinity when MAX_VMS is 0, i.e. unlimited). */
export function freeSlots(h: Pick<HostInfo, 'max_vms' | 'active_vms'>): number {
  return h.max_vms === 0 ? Number.POSITIVE_INFINITY : Math.max(0, h.max_vms - h.active_vms);
}

/**
 * Placement: the hosts a new VM should try, best first. Only hosts that accept VMs; most free
 * slots first (MAX_VMS - active), then most available memory, then the host id (stable order).
 * Full hosts stay at the end: the orchestrator decides, and a slot may have been freed since
 * the last heartbeat.
 */
export function rankHosts(hosts: HostInfo[]): HostInfo[] {
  return hosts
    .filter((h) => h.accepting)
    .sort(
      (a, b) =>
        freeSlots(b) - freeSlots(a) ||
        b.mem_available_mib - a.mem_available_mib ||
        (a.host_id < b.host_id ? -1 : a.host_id > b.host_id ? 1 : 0),
    );
}

/** Where an operation on a user's VM goes. */
export type VmHostTarget =
  /** The VM (running or stopped: its data disk lives there) belongs to a live host. */
  | { kind: 'host'; host: HostInfo }
  /** The VM belongs to a host whose heartbeat expired. */
  | { kind: 'down'; hostId: string; url: string | null }
  /** A record from before the host registry (no `host_id`): the default orchestrator. */
  | { kind: 'default' }
  /** No VM yet: live hosts ranked for placement (empty when none registered). */
  | { kind: 'new'; candidates: HostInfo[] };

/** Reads the host registry and VM records (read-only; the orchestrators write them). */
export class HostDirectory {
  constructor(private readonly redis: Redis) {}

  /** Hosts whose heartbeat has not expired. */
  async live(): Promise<HostInfo[]> {
    const ids = await this.redis.zrange(hostKeys.hosts(), 0, -1);
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => hostKeys.host(id)));
    return raws.map((r) => parseHostInfo(r)).filter((h): h is HostInfo => h !== null);
  }

  /** A live host, or null when its heartbeat expired (or it never registered). */
  async get(hostId: string): Promise<HostInfo | null> {
    return parseHostInfo(await this.redis.get(hostKeys.host(hostId)));
  }

  /** Which host an operation on `openid`'s VM must go to. */
  async target(openid: string): Promise<VmHostTarget> {
    const raw = await this.redis.get(hostKeys.vm(openid));
    if (raw === null) return { kind: 'new', candidates: rankHosts(await this.live()) };
    let rec: { host_id?: unknown; host_url?: unknown } = {};
    try {
      rec = JSON.parse(raw) as typeof rec;
    } catch {
      // an unreadable record: the default orchestrator owns the decision
    }
    if (typeof rec.host_id !== 'string' || !HOST_ID_PATTERN.test(rec.host_id)) return { kind: 'default' };
    const host = await this.get(rec.host_id);
    if (host) return { kind: 'host', host };
    return { kind: 'down', hostId: rec.host_id, url: typeof rec.host_url === 'string' ? rec.host_url : null };
  }
}

/** How a failed call to one orchestrator is handled by {@link callVmHost}. */
export type HostCallFailure =
  /** Try the next candidate host (refused for capacity, or not reachable at all). */
  | 'next-host'
  /** The VM belongs to another host (someone placed it meanwhile): look the user up again. */
  | 'moved'
  | 'fail';

export interface HostCall<T> {
  openid: string;
  /** ORCHESTRATOR_URL: used when no host is registered, and for records without `host_id`. */
  defaultUrl: string;
  /** True for create/start: a user without a VM is placed on the best live host. */
  place: boolean;
  call(url: string, host: HostInfo | null): Promise<T>;
  classify(err: unknown): HostCallFailure;
  /** The error to throw when the VM's host is down (nothing is called then). */
  hostDown(hostId: string, url: string | null): Error;
  /** Candidate hosts tried for one placement (default 3). */
  maxCandidates?: number;
}

/**
 * Runs one orchestrator call on the right host: the host that owns the user's VM; for a new VM
 * (`place`) the best live host, then the next ones when a host refuses for capacity or cannot be
 * reached; ORCHESTRATOR_URL when no host is registered. A VM whose host is down is never
 * recreated elsewhere (its data disk lives on that host): `hostDown` is thrown instead.
 */
export async function callVmHost<T>(dir: HostDirectory, c: HostCall<T>): Promise<T> {
  for (let round = 1; ; round++) {
    const t = await dir.target(c.openid);
    const retry = (err: unknown) => round < 2 && c.classify(err) === 'moved';
    switch (t.kind) {
      case 'down':
        throw c.hostDown(t.hostId, t.url);
      case 'host':
        try {
          return await c.call(t.host.url, t.host);
        } catch (err) {
          if (retry(err)) continue;
          throw err;
        }
      case 'default':
        return c.call(c.defaultUrl, null);
      case 'new': {
        if (!c.place || t.candidates.length === 0) {
          try {
            return await c.call(c.defaultUrl, null);
          } catch (err) {
            if (retry(err)) continue;
            throw err;
          }
        }
        let last: unknown;
        let moved = false;
        for (const host of t.candidates.slice(0, c.maxCandidates ?? 3)) {
          try {
            return await c.call(host.url, host);
          } catch (err) {
            const kind = c.classify(err);
            last = err;
            if (kind === 'next-host') continue;
            moved = kind === 'moved';
            break;
          }
        }
        if (moved && round < 2) continue;
        throw last;
      }
    }
  }
}
