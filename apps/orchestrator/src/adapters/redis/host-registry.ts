import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { cpus, freemem, hostname, totalmem } from 'node:os';
import { type HostInfo, type Logger, parseHostInfo } from '@moltage/core';
import type { Redis } from 'ioredis';
import type { HostPeers } from '../../domain/host-peers.js';
import { HostConflictError } from '../../errors.js';
import { keys } from '../../keys.js';

/** Sets the entry unless another instance holds it (ARGV[7] = '1' takes it over); 0 = held. */
const HEARTBEAT = `
local cur = redis.call('GET', KEYS[1])
if cur and ARGV[7] ~= '1' then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and v['instance'] ~= ARGV[3] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[5]), ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[6]))
return 1
`;

/** Removes the entry if this instance still holds it. */
const DEREGISTER = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and v['instance'] ~= ARGV[1] then return 0 end
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
`;

/** Registry index entries of hosts silent for this long are dropped (the entries expired long ago). */
const FORGET_SILENT_HOSTS_MS = 7 * 24 * 3600 * 1000;

/** What the orchestrator writes beyond {@link HostInfo}: enough to refuse clashing setups. */
export interface HostEntry extends HostInfo {
  socket_dir: string;
  vm_data_dir: string;
  /** BRIDGE_NAME in tap mode (one per orchestrator on a machine), else null. */
  bridge: string | null;
  pid: number;
}

/** What changes between heartbeats. */
export interface HostFacts {
  accepting: boolean;
  problem: string | null;
  driver: string | null;
  activeVms: number;
  vmsMemMib: number;
}

export interface HostRegistryOptions {
  redis: Redis;
  hostId: string;
  subnet: string;
  network: 'user' | 'tap';
  bridge: string | null;
  socketDir: string;
  vmDataDir: string;
  maxVms: number;
  heartbeatMs: number;
  ttlMs: number;
  logger: Logger;
  facts(): Promise<HostFacts>;
}

/** /etc/machine-id when there is one (stable per machine), else the hostname. */
async function machineId(): Promise<string> {
  const id = await readFile('/etc/machine-id', 'utf8').then(
    (t) => t.trim(),
    () => '',
  );
  return id || `hostname:${hostname()}`;
}

/** MemTotal and MemAvailable in MiB (Linux), else what Node reports. */
async function memory(): Promise<{ totalMib: number; availableMib: number }> {
  try {
    const text = await readFile('/proc/meminfo', 'utf8');
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]);
    const total = kib('MemTotal');
    const available = kib('MemAvailable');
    if (Number.isFinite(total) && Number.isFinite(available))
      return { totalMib: Math.floor(total / 1024), availableMib: Math.floor(available / 1024) };
  } catch {
    // not Linux
  }
  return { totalMib: Math.floor(totalmem() / 2 ** 20), availableMib: Math.floor(freemem() / 2 ** 20) };
}

/**
 * This host in the host registry (`host:<id>` with a TTL, indexed in `hosts`): capacity and a
 * heartbeat every `heartbeatMs`, refreshed at once when VM slots change, removed on a clean
 * shutdown. Also answers the VM manager's questions about the other hosts.
 */
export class HostRegistry implements HostPeers {
  readonly instance = randomUUID();
  private url: string | null = null;
  private machine?: string;
  private readonly startedAt = new Date().toISOString();
  private timer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private queued = false;
  private active = false;
  private warnedConflict = false;

  constructor(private readonly o: HostRegistryOptions) {}

  private async machineId(): Promise<string> {
    this.machine ??= await machineId();
    return this.machine;
  }

  /** Live hosts' entries (expired ones are gone from Redis). */
  async liveHosts(): Promise<HostEntry[]> {
    const ids = await this.o.redis.zrange(keys.hosts(), 0, -1);
    if (ids.length === 0) return [];
    const raws = await this.o.redis.mget(ids.map((id) => keys.host(id)));
    return raws.map((r) => parseHostInfo(r) as HostEntry | null).filter((h): h is HostEntry => h !== null);
  }

  async isLive(hostId: string): Promise<boolean> {
    return (await this.o.redis.exists(keys.host(hostId))) === 1;
  }

  async othersLive(): Promise<string[]> {
    return (await this.liveHosts()).map((h) => h.host_id).filter((id) => id !== this.o.hostId);
  }

  /**
   * Refuses to start next to a live orchestrator that uses the same HOST_ID (unless it is this
   * host's previous process: same machine and directories), the same VM_SUBNET, or — on the same
   * machine — the same SOCKET_DIR, VM_DATA_DIR or bridge. Runs before reconciliation touches
   * anything. `url` is this orchestrator's public URL when already known.
   */
  async checkConflicts(url: string | null): Promise<void> {
    const me = await this.machineId();
    const o = this.o;
    for (const h of await this.liveHosts()) {
      const sameMachine = h.machine_id === me;
      if (h.host_id === o.hostId) {
        const previousSelf =
          sameMachine &&
          h.socket_dir === o.socketDir &&
          h.vm_data_dir === o.vmDataDir &&
          (url === null || h.url === url);
        if (!previousSelf) {
          throw new HostConflictError(
            `HOST_ID ${o.hostId} is already registered by a live orchestrator at ${h.url}` +
              `${sameMachine ? ' on this machine' : ' on another machine'}; give every host its own HOST_ID`,
          );
        }
        o.logger.info(
          { host: o.hostId },
          'taking over the registry entry of this host’s previous orchestrator',
        );
        continue;
      }
      if (h.subnet === o.subnet) {
        throw new HostConflictError(
          `VM_SUBNET ${o.subnet} is already used by host ${h.host_id} (${h.url}); give every host its own VM_SUBNET`,
        );
      }
      if (sameMachine) {
        const shared =
          h.socket_dir === o.socketDir
            ? `SOCKET_DIR ${o.socketDir}`
            : h.vm_data_dir === o.vmDataDir
              ? `VM_DATA_DIR ${o.vmDataDir}`
              : o.bridge !== null && h.bridge === o.bridge
                ? `BRIDGE_NAME ${o.bridge}`
                : null;
        if (shared) {
          throw new HostConflictError(
            `${shared} is already used by host ${h.host_id} (${h.url}) on this machine; give each orchestrator its own`,
          );
        }
      }
    }
  }

  /** Announces the host (taking over an entry of this host's previous process) and keeps beating. */
  async start(url: string): Promise<void> {
    this.url = url;
    this.active = true;
    await this.beat(true);
    this.timer = setInterval(() => {
      this.changed();
    }, this.o.heartbeatMs);
    this.timer.unref();
  }

  /** Refreshes the entry soon (coalesced; heartbeats never overtake each other). */
  changed(): void {
    if (!this.active || this.queued) return;
    this.queued = true;
    this.running = this.running.then(async () => {
      this.queued = false;
      if (this.active) await this.beat(false).catch((err) => this.o.logger.warn({ err }, 'heartbeat failed'));
    });
  }

  /** Waits for queued heartbeats (tests, shutdown). */
  async flush(): Promise<void> {
    await this.running;
  }

  /** The entry as it would be written now. */
  async entry(): Promise<HostEntry> {
    const facts = await this.o.facts();
    const mem = await memory();
    return {
      host_id: this.o.hostId,
      url: this.url ?? '',
      accepting: facts.accepting,
      problem: facts.problem,
      subnet: this.o.subnet,
      network: this.o.network,
      driver: facts.driver,
      max_vms: this.o.maxVms,
      active_vms: facts.activeVms,
      vms_mem_mib: facts.vmsMemMib,
      mem_total_mib: mem.totalMib,
      mem_available_mib: mem.availableMib,
      vcpus: cpus().length,
      started_at: this.startedAt,
      heartbeat_at: new Date().toISOString(),
      ttl_ms: this.o.ttlMs,
      instance: this.instance,
      machine_id: await this.machineId(),
      socket_dir: this.o.socketDir,
      vm_data_dir: this.o.vmDataDir,
      bridge: this.o.bridge,
      pid: process.pid,
    };
  }

  private async beat(force: boolean): Promise<void> {
    const entry = await this.entry();
    const now = Date.now();
    const ok = await this.o.redis.eval(
      HEARTBEAT,
      2,
      keys.host(this.o.hostId),
      keys.hosts(),
      JSON.stringify(entry),
      String(this.o.ttlMs),
      this.instance,
      this.o.hostId,
      String(now),
      String(now - FORGET_SILENT_HOSTS_MS),
      force ? '1' : '0',
    );
    if (ok === 0) {
      if (!this.warnedConflict)
        this.o.logger.error(
          { host: this.o.hostId },
          'another orchestrator took over this HOST_ID in the host registry; give every host its own HOST_ID',
        );
      this.warnedConflict = true;
    } else {
      this.warnedConflict = false;
    }
  }

  /** Stops the heartbeat and removes the entry (new VMs are no longer placed here). */
  async stop(): Promise<void> {
    this.active = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running.catch(() => {});
    await this.o.redis.eval(
      DEREGISTER,
      2,
      keys.host(this.o.hostId),
      keys.hosts(),
      this.instance,
      this.o.hostId,
    );
  }
}
