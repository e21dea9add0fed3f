import type { Redis } from 'ioredis';
import type { StoredVm } from '../../domain/vm-record.js';
import { keys } from '../../keys.js';

/** Returns the caller's existing address, else claims the first free candidate (ARGV[2..]). */
const ALLOCATE_IP = `
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then return all[i] end
end
for i = 2, #ARGV do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[1]) == 1 then return ARGV[i] end
end
return false
`;

const RELEASE_IF_OWNER = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`;

/** Adds the user to the active set unless MAX_VMS (ARGV[2]) is reached; 0 = refused. */
const RESERVE_SLOT = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if tonumber(ARGV[2]) > 0 and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
return redis.call('SADD', KEYS[1], ARGV[1]) + 1
`;

/** Sets last_active_at inside the JSON record without racing other writers. */
const TOUCH = `
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local vm = cjson.decode(raw)
vm['last_active_at'] = ARGV[1]
local out = cjson.encode(vm)
redis.call('SET', KEYS[1], out)
return out
`;

const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Deletes the lock only when its value starts with ARGV[1] (the owner host's prefix). */
const RELEASE_LOCK_IF_PREFIX = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * VM records, IP pool, MAX_VMS slots and per-user locks in Redis. Records and locks are shared
 * by all hosts; the slot set and the IP pool are this host's (`hostId`, `subnetCidr`).
 */
export class VmStore {
  constructor(
    private readonly redis: Redis,
    private readonly subnetCidr: string,
    readonly hostId: string,
  ) {}

  async get(userId: string): Promise<StoredVm | undefined> {
    const raw = await this.redis.get(keys.vm(userId));
    return raw ? (JSON.parse(raw) as StoredVm) : undefined;
  }

  async put(vm: StoredVm): Promise<void> {
    await this.redis
      .multi()
      .set(keys.vm(vm.user_id), JSON.stringify(vm))
      .sadd(keys.vmIndex(), vm.user_id)
      .exec();
  }

  /** Forgets the record; `hostId` is the host whose slot it may hold (this host by default). */
  async remove(userId: string, hostId = this.hostId): Promise<void> {
    await this.redis
      .multi()
      .del(keys.vm(userId))
      .srem(keys.vmIndex(), userId)
      .srem(keys.vmActive(hostId), userId)
      .exec();
  }

  async touch(userId: string, atIso: string): Promise<StoredVm | undefined> {
    const raw = await this.redis.eval(TOUCH, 1, keys.vm(userId), atIso);
    return typeof raw === 'string' ? (JSON.parse(raw) as StoredVm) : undefined;
  }

  async userIds(): Promise<string[]> {
    return (await this.redis.smembers(keys.vmIndex())).sort();
  }

  async list(): Promise<StoredVm[]> {
    const ids = await this.userIds();
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => keys.vm(id)));
    return raws.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as StoredVm);
  }

  async allocateIp(userId: string, candidates: string[]): Promise<string | null> {
    const ip = await this.redis.eval(ALLOCATE_IP, 1, keys.ipPool(this.subnetCidr), userId, ...candidates);
    return typeof ip === 'string' ? ip : null;
  }

  /** Frees `ip` if `userId` holds it, in this host's pool or in `subnetCidr`'s. */
  async releaseIp(ip: string, userId: string, subnetCidr = this.subnetCidr): Promise<void> {
    await this.redis.eval(RELEASE_IF_OWNER, 1, keys.ipPool(subnetCidr), ip, userId);
  }

  async ipAllocations(): Promise<Record<string, string>> {
    return this.redis.hgetall(keys.ipPool(this.subnetCidr));
  }

  async reserveSlot(userId: string, maxVms: number): Promise<boolean> {
    return (await this.redis.eval(RESERVE_SLOT, 1, keys.vmActive(this.hostId), userId, String(maxVms))) !== 0;
  }

  async releaseSlot(userId: string, hostId = this.hostId): Promise<void> {
    await this.redis.srem(keys.vmActive(hostId), userId);
  }

  /** Users whose VM holds a slot on this host. */
  async activeUserIds(): Promise<string[]> {
    return this.redis.smembers(keys.vmActive(this.hostId));
  }

  /** Removes the single-host `vms:active` set of releases before the host registry. */
  async dropLegacyActive(): Promise<void> {
    await this.redis.del(keys.legacyVmActive());
  }

  async tryLock(userId: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(keys.vmLock(userId), token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async unlock(userId: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE_LOCK, 1, keys.vmLock(userId), token);
  }

  /**
   * Removes the per-user locks whose value starts with `ownerPrefix` (`<host id>:`): the locks a
   * previous, dead orchestrator process of this host left. Other hosts' locks stay.
   */
  async clearLocks(ownerPrefix: string): Promise<number> {
    let cursor = '0';
    let n = 0;
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', keys.lockPattern(), 'COUNT', 200);
      cursor = next;
      for (const key of found)
        n += Number(await this.redis.eval(RELEASE_LOCK_IF_PREFIX, 1, key, ownerPrefix));
    } while (cursor !== '0');
    return n;
  }
}
