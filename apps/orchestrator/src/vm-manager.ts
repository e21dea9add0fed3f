import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@moltage/core';
import { ensureDataDisk, writeConfigDisk } from './adapters/disks.js';
import type { ResolvedImage } from './adapters/image-resolver.js';
import { cmdlineOf, findProcesses, rssMib, waitForExit } from './adapters/process.js';
import { bannerAnswers, portAnswers } from './adapters/readiness.js';
import type { VmStore } from './adapters/redis/vm-store.js';
import { encodeConfigDisk, rewriteLoopbackUrl } from './domain/config-disk.js';
import type { DriverAvailability, VmDriver, VmHandle } from './domain/driver.js';
import { type HostIdentity, type HostPeers, NO_PEERS } from './domain/host-peers.js';
import { poolAddresses, type Subnet, userModeDnsIp } from './domain/ip-pool.js';
import type { NetworkProvider } from './domain/network.js';
import { publicRecord, type StoredVm, USER_ID_PATTERN, type VmRecord } from './domain/vm-record.js';
import {
  BadRequestError,
  IpPoolExhaustedError,
  MaxVmsError,
  NoDriverError,
  OrchestratorError,
  VmBusyError,
  VmNotFoundError,
  VmNotReadyError,
  VmOnOtherHostError,
} from './errors.js';

export interface VmManagerConfig {
  subnet: Subnet;
  gatewayIp: string;
  defaultVcpu: number;
  /** DEFAULT_MEM_MIB; unset = the image's `memMib`, else 512. */
  defaultMemMib?: number;
  dataDiskMib: number;
  vmDataDir: string;
  socketDir: string;
  readyTimeoutMs: number;
  /** 0 = unlimited. */
  maxVms: number;
  stopTimeoutMs: number;
  llm: { baseUrl?: string; apiKey?: string; model?: string };
  /** The SSH gateway's public key, installed for the VM user. */
  gatewaySshPubKey?: string;
  /** This host (HOST_ID, ORCHESTRATOR_PUBLIC_URL); VM records carry it. */
  host: HostIdentity;
}

export interface VmManagerDeps {
  store: VmStore;
  /** The selected driver, or undefined with the reason none works. */
  driver: VmDriver | undefined;
  driverProblem?: string;
  network: NetworkProvider;
  image: () => Promise<ResolvedImage>;
  logger: Logger;
  config: VmManagerConfig;
  metrics?: { created(durationS: number, ok: boolean): void };
  /** The other hosts (host registry); a lone orchestrator has none. */
  peers?: HostPeers;
}

export interface CreateInput {
  userId: string;
  callbackUrl?: string;
  callbackToken?: string;
}

const nowIso = () => new Date().toISOString();

/** VM lifecycle over a driver, the Redis store, disks and networking. */
export class VmManager {
  private readonly log: Logger;
  private readonly instance = randomUUID();
  private reaper?: NodeJS.Timeout;
  private exitWatch?: NodeJS.Timeout;
  /** The exit check in progress, if any (never two at once). */
  private exitCheck?: Promise<unknown>;

  constructor(private readonly deps: VmManagerDeps) {
    this.log = deps.logger;
  }

  private get cfg() {
    return this.deps.config;
  }

  private get peers(): HostPeers {
    return this.deps.peers ?? NO_PEERS;
  }

  get hostId(): string {
    return this.cfg.host.id;
  }

  /** Lock values of this host start with this (start-up cleanup removes only those). */
  get lockPrefix(): string {
    return `${this.cfg.host.id}:`;
  }

  /** True when the record is this host's: its `host_id`, or none (a record from before hosts). */
  private owns(vm: StoredVm): boolean {
    return vm.host_id === undefined || vm.host_id === this.cfg.host.id;
  }

  /** Refuses to manage a VM whose data disk lives on another host. */
  private assertOwned(vm: StoredVm | undefined): void {
    if (vm && !this.owns(vm)) throw new VmOnOtherHostError(vm.user_id, vm.host_id!, vm.host_url ?? null);
  }

  /** The record stamped with this host (records from before hosts are claimed on write). */
  private stamp(vm: StoredVm): StoredVm {
    return { ...vm, host_id: this.cfg.host.id, host_url: this.cfg.host.url() ?? vm.host_url ?? null };
  }

  async driverAvailability(): Promise<DriverAvailability> {
    if (!this.deps.driver) return { ok: false, reason: this.deps.driverProblem ?? 'no driver selected' };
    return this.deps.driver.availability();
  }

  async driverName(): Promise<string | undefined> {
    return this.deps.driver?.name;
  }

  private userDir(userId: string) {
    return join(this.cfg.vmDataDir, userId);
  }

  private validateUser(userId: string) {
    if (!USER_ID_PATTERN.test(userId))
      throw new BadRequestError('user_id must be 1-64 characters of A-Z a-z 0-9 _ -');
  }

  /** Runs `fn` holding the per-user lock; waits for another holder up to `waitMs`. */
  private async withLock<T>(userId: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
    const token = `${this.lockPrefix}${this.instance}:${randomBytes(8).toString('hex')}`;
    const ttlMs = this.cfg.readyTimeoutMs + this.cfg.stopTimeoutMs + 60_000;
    const deadline = Date.now() + waitMs;
    while (!(await this.deps.store.tryLock(userId, token, ttlMs))) {
      if (Date.now() > deadline) throw new VmBusyError(userId);
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      return await fn();
    } finally {
      await this.deps.store.unlock(userId, token).catch((err) => this.log.warn({ err }, 'unlock failed'));
    }
  }

  async get(userId: string): Promise<VmRecord> {
    this.validateUser(userId);
    const vm = await this.deps.store.get(userId);
    if (!vm) throw new VmNotFoundError(userId);
    return this.withUsage(vm);
  }

  /** Every VM record (all hosts), or those of one host. */
  async list(hostId?: string): Promise<VmRecord[]> {
    const all = await this.deps.store.list();
    return Promise.all(
      (hostId === undefined ? all : all.filter((vm) => vm.host_id === hostId)).map((vm) =>
        this.withUsage(vm),
      ),
    );
  }

  /** The public record plus the hypervisor's resident memory, for a running VM of this host. */
  private async withUsage(vm: StoredVm): Promise<VmRecord> {
    const rec = publicRecord(vm);
    const handle = vm.runtime.handle;
    if (vm.state !== 'running' || !handle || !this.owns(vm)) return { ...rec, rss_mib: null };
    // The pid must still be this VM's process (pids are reused).
    const args = await cmdlineOf(handle.pid);
    const mine = args?.some((a) => a.includes(handle.controlSocket)) ?? false;
    return { ...rec, rss_mib: mine ? await rssMib(handle.pid) : null };
  }

  /** The records this host owns. */
  private async own(): Promise<StoredVm[]> {
    return (await this.deps.store.list()).filter((vm) => vm.host_id === this.cfg.host.id);
  }

  /** This host's VMs for the host registry: slots taken and the memory they were given. */
  async capacity(): Promise<{ activeVms: number; vmsMemMib: number }> {
    const active = new Set(await this.deps.store.activeUserIds());
    const vms = (await this.own()).filter((vm) => active.has(vm.user_id));
    return { activeVms: active.size, vmsMemMib: vms.reduce((sum, vm) => sum + vm.mem_mib, 0) };
  }

  async touch(userId: string): Promise<VmRecord> {
    this.validateUser(userId);
    const vm = await this.deps.store.touch(userId, nowIso());
    if (!vm) throw new VmNotFoundError(userId);
    return publicRecord(vm);
  }

  /** Idempotent: returns the running VM, starts a stopped one, or creates it. */
  async create(input: CreateInput): Promise<VmRecord> {
    this.validateUser(input.userId);
    const waitMs = this.cfg.readyTimeoutMs + this.cfg.stopTimeoutMs + 30_000;
    return this.withLock(input.userId, waitMs, async () => {
      const existing = await this.deps.store.get(input.userId);
      this.assertOwned(existing);
      if (existing?.state === 'running' && existing.runtime.handle && this.deps.driver) {
        const st = await this.deps.driver.status(existing.runtime.handle);
        if (st === 'running') {
          if (input.callbackUrl !== undefined && input.callbackUrl !== existing.callback_url) {
            this.log.info(
              { openid: input.userId },
              'callback URL changed; it reaches the guest at its next start',
            );
          }
          const updated: StoredVm = this.stamp({ ...existing, last_active_at: nowIso() });
          await this.deps.store.put(updated);
          return publicRecord(updated);
        }
        this.log.warn(
          { openid: input.userId, state: st },
          'VM process is gone or unhealthy; starting it again',
        );
      }
      if (existing) await this.releaseResources(existing);
      return publicRecord(await this.startVm(input, existing));
    });
  }

  private async startVm(input: CreateInput, previous: StoredVm | undefined): Promise<StoredVm> {
    const started = Date.now();
    const avail = await this.driverAvailability();
    if (!this.deps.driver || !avail.ok) throw new NoDriverError(avail.reason ?? 'unknown');
    const driver = this.deps.driver;
    const image = await this.deps.image();
    const userId = input.userId;
    const vmId = `vm-${randomBytes(5).toString('hex')}`;
    const undo: Array<() => Promise<void>> = [];
    const rollback = async () => {
      for (const step of undo.reverse())
        await step().catch((err) => this.log.warn({ err, openid: userId }, 'rollback step failed'));
    };

    const createdAt = previous?.created_at ?? nowIso();
    let vm: StoredVm | undefined;
    try {
      if (!(await this.deps.store.reserveSlot(userId, this.cfg.maxVms)))
        throw new MaxVmsError(this.cfg.maxVms);
      this.peers.changed();
      undo.push(async () => {
        await this.deps.store.releaseSlot(userId);
        this.peers.changed();
      });

      const exclude = [this.cfg.gatewayIp];
      if (this.deps.network.mode === 'user') exclude.push(userModeDnsIp(this.cfg.subnet));
      const ip = await this.deps.store.allocateIp(userId, poolAddresses(this.cfg.subnet, exclude));
      if (!ip) throw new IpPoolExhaustedError(this.cfg.subnet.cidr);
      undo.push(() => this.deps.store.releaseIp(ip, userId));

      let network = await this.deps.network.attach({ vmId, userId, ip });
      undo.push(() => this.deps.network.detach(network));

      const dir = this.userDir(userId);
      const dataDiskPath = join(dir, 'data.img');
      const configDiskPath = join(dir, 'config.img');
      if (await ensureDataDisk(dataDiskPath, this.cfg.dataDiskMib))
        this.log.info({ openid: userId }, 'created data disk');

      const agentToken = previous?.agent_token ?? randomBytes(24).toString('base64url');
      const callbackUrl = input.callbackUrl ?? previous?.callback_url ?? undefined;
      const callbackToken = input.callbackToken ?? previous?.runtime.callbackToken;
      const hostIp = this.deps.network.hostIpForGuest();
      const agentGuestPort = image.agentPort ?? 8789;
      const guestNet = network.mode === 'tap' || network.mode === 'user' ? network : undefined;
      await writeConfigDisk(
        configDiskPath,
        encodeConfigDisk({
          user_id: userId,
          vm_id: vmId,
          // Stable per user, not per boot: software in the guest recognises what its own previous
          // boot left behind (OpenClaw reclaims a state lease of a dead pid only on the same host
          // name, else waits out its TTL after an unclean stop).
          hostname: `moltage-${createHash('sha256').update(userId).digest('hex').slice(0, 10)}`,
          ip: `${guestNet!.ip}/${guestNet!.prefixLen}`,
          gateway: guestNet!.gatewayIp,
          dns: network.mode === 'user' ? network.dnsIp : undefined,
          ssh_user: image.sshUser,
          ssh_authorized_key: this.cfg.gatewaySshPubKey,
          agent_port: agentGuestPort,
          agent_token: agentToken,
          callback_url:
            network.mode === 'user'
              ? rewriteLoopbackUrl(callbackUrl ?? undefined, hostIp)
              : (callbackUrl ?? undefined),
          callback_token: callbackToken,
          llm_base_url:
            network.mode === 'user' ? rewriteLoopbackUrl(this.cfg.llm.baseUrl, hostIp) : this.cfg.llm.baseUrl,
          llm_api_key: this.cfg.llm.apiKey,
          llm_model: this.cfg.llm.model,
        }),
      );

      let endpoints = this.deps.network.endpoints(network, {
        sshPort: image.sshPort,
        agentPort: agentGuestPort,
      });
      vm = {
        user_id: userId,
        state: 'creating',
        ip,
        ssh: endpoints.ssh,
        agent_url:
          image.agentPort === null ? null : `http://${endpoints.agent.host}:${endpoints.agent.port}/webhook`,
        agent_token: agentToken,
        created_at: createdAt,
        last_active_at: nowIso(),
        vcpu: previous?.vcpu ?? this.cfg.defaultVcpu,
        mem_mib: previous?.mem_mib ?? this.cfg.defaultMemMib ?? image.memMib ?? 512,
        callback_url: callbackUrl ?? null,
        error: null,
        host_id: this.cfg.host.id,
        host_url: this.cfg.host.url(),
        runtime: {
          vmId,
          handle: null,
          subnet: this.cfg.subnet.cidr,
          network: network.mode,
          tapName: network.mode === 'tap' ? network.tapName : undefined,
          sshHostPort: network.mode === 'user' ? network.sshHostPort : undefined,
          agentHostPort: network.mode === 'user' ? network.agentHostPort : undefined,
          callbackToken,
        },
      };
      await this.deps.store.put(vm);

      const runDir = join(this.cfg.socketDir, vmId);
      undo.push(() => rm(runDir, { recursive: true, force: true }));
      let handle: VmHandle | undefined;
      for (let attempt = 1; !handle; attempt++) {
        try {
          handle = await driver.start({
            vmId,
            userId,
            vcpu: vm.vcpu,
            memMib: vm.mem_mib,
            kernelPath: image.kernelPath,
            initrdPath: image.initrdPath,
            kernelArgs: image.kernelArgs,
            baseRootfsPath: image.rootfsPath,
            dataDiskPath,
            configDiskPath,
            network,
            runDir,
            tcgTbMib: image.tcgTbMib,
          });
        } catch (err) {
          // User-mode host ports are picked free but may be taken before QEMU binds them.
          const portClash = network.mode === 'user' && /forward|in use/i.test((err as Error).message);
          if (!portClash || attempt >= 3) throw err;
          this.log.warn({ openid: userId, attempt }, 'forwarded port was taken; retrying with new ports');
          network = await this.deps.network.attach({ vmId, userId, ip });
          endpoints = this.deps.network.endpoints(network, {
            sshPort: image.sshPort,
            agentPort: agentGuestPort,
          });
          vm = {
            ...vm,
            ssh: endpoints.ssh,
            agent_url:
              vm.agent_url === null ? null : `http://${endpoints.agent.host}:${endpoints.agent.port}/webhook`,
            runtime: {
              ...vm.runtime,
              sshHostPort: network.mode === 'user' ? network.sshHostPort : undefined,
              agentHostPort: network.mode === 'user' ? network.agentHostPort : undefined,
            },
          };
        }
      }
      const vmHandle = handle;
      undo.push(() => driver.kill(vmHandle));
      vm = { ...vm, runtime: { ...vm.runtime, handle: vmHandle, startedAt: nowIso() } };
      await this.deps.store.put(vm);
      this.log.info(
        { openid: userId, vmId, pid: handle.pid, ip },
        'VM process started; waiting for the guest',
      );

      await this.waitReady(userId, handle, endpoints, image.agentPort !== null);
      vm = { ...vm, state: 'running', last_active_at: nowIso() };
      await this.deps.store.put(vm);
      this.deps.metrics?.created((Date.now() - started) / 1000, true);
      this.log.info({ openid: userId, vmId, ms: Date.now() - started }, 'VM ready');
      return vm;
    } catch (err) {
      this.deps.metrics?.created((Date.now() - started) / 1000, false);
      await rollback();
      if (vm) {
        const failed: StoredVm = {
          ...vm,
          state: 'error',
          ip: null,
          ssh: null,
          agent_url: null,
          error: err instanceof Error ? err.message : String(err),
          runtime: { ...vm.runtime, handle: null },
        };
        await this.deps.store.put(failed).catch(() => {});
      }
      throw err;
    }
  }

  private async waitReady(
    userId: string,
    handle: VmHandle,
    endpoints: ReturnType<NetworkProvider['endpoints']>,
    hasAgent: boolean,
  ): Promise<void> {
    const deadline = Date.now() + this.cfg.readyTimeoutMs;
    let sshOk = false;
    let agentOk = !hasAgent;
    while (Date.now() < deadline) {
      if ((await cmdlineOf(handle.pid)) === undefined) {
        throw new VmNotReadyError(
          userId,
          this.cfg.readyTimeoutMs,
          new Error('the VM process exited during boot'),
        );
      }
      if (!sshOk) sshOk = await bannerAnswers(endpoints.ssh.host, endpoints.ssh.port, 'SSH-');
      if (sshOk && !agentOk) agentOk = await portAnswers(endpoints.agent.host, endpoints.agent.port);
      if (sshOk && agentOk) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new VmNotReadyError(userId, this.cfg.readyTimeoutMs);
  }

  /** Stops the VM process (gracefully) and frees IP, TAP, ports, slot and run dir. */
  private async releaseResources(vm: StoredVm, graceful = true): Promise<void> {
    const handle = vm.runtime.handle;
    if (handle && this.deps.driver) {
      try {
        if (graceful) await this.deps.driver.stop(handle, { timeoutMs: this.cfg.stopTimeoutMs });
        else await this.deps.driver.kill(handle);
      } catch (err) {
        this.log.warn({ err, openid: vm.user_id }, 'stopping the VM failed; killing it');
        await this.deps.driver.kill(handle);
      }
      await rm(handle.runDir, { recursive: true, force: true });
    } else if (handle) {
      // No driver in this process (e.g. after a config change): still never leak the process,
      // but only kill the pid when it still is that VM (its argv names the control socket).
      const args = await cmdlineOf(handle.pid);
      if (args?.some((a) => a.includes(handle.controlSocket))) {
        try {
          process.kill(handle.pid, 'SIGKILL');
        } catch {
          // gone
        }
        await waitForExit(handle.pid, 5000);
      }
      await rm(handle.runDir, { recursive: true, force: true });
    }
    if (vm.runtime.network === 'tap' && vm.runtime.tapName) {
      await this.deps.network
        .removeOrphan(vm.runtime.tapName)
        .catch((err) => this.log.warn({ err }, 'TAP removal failed'));
    }
    if (vm.ip) await this.deps.store.releaseIp(vm.ip, vm.user_id, vm.runtime.subnet);
    await this.deps.store.releaseSlot(vm.user_id);
    this.peers.changed();
  }

  /** Stops a VM and keeps its record as `stopped` (idle reaper, unsubscribe). */
  async stop(userId: string): Promise<VmRecord> {
    this.validateUser(userId);
    return this.withLock(userId, this.cfg.stopTimeoutMs + 30_000, async () => {
      const vm = await this.deps.store.get(userId);
      if (!vm) throw new VmNotFoundError(userId);
      this.assertOwned(vm);
      await this.releaseResources(vm);
      const stopped: StoredVm = this.stamp({
        ...vm,
        state: 'stopped',
        ip: null,
        ssh: null,
        agent_url: null,
        runtime: { ...vm.runtime, handle: null },
      });
      await this.deps.store.put(stopped);
      this.log.info({ openid: userId }, 'VM stopped');
      return publicRecord(stopped);
    });
  }

  /**
   * Stops the VM, frees its IP and TAP, forgets the record; the data disk stays unless `purge`.
   * A VM of another host is refused, unless `forget` and that host is down: then only its record,
   * slot and address are dropped (its data disk stays on the dead host), so that the user can get
   * a new VM elsewhere.
   */
  async delete(userId: string, purge: boolean, forget = false): Promise<void> {
    this.validateUser(userId);
    await this.withLock(userId, this.cfg.stopTimeoutMs + this.cfg.readyTimeoutMs + 30_000, async () => {
      const vm = await this.deps.store.get(userId);
      if (!vm && !purge) throw new VmNotFoundError(userId);
      if (vm && !this.owns(vm)) {
        const owner = vm.host_id!;
        if (!forget) this.assertOwned(vm);
        if (await this.peers.isLive(owner)) {
          throw new VmOnOtherHostError(userId, owner, vm.host_url ?? null, ', which is up: delete it there');
        }
        if (vm.ip && vm.runtime.subnet) await this.deps.store.releaseIp(vm.ip, userId, vm.runtime.subnet);
        await this.deps.store.remove(userId, owner);
        this.log.warn({ openid: userId, host: owner }, 'forgot the VM record of a host that is down');
      } else if (vm) {
        await this.releaseResources(vm);
        await this.deps.store.remove(userId);
      }
      if (purge) await rm(this.userDir(userId), { recursive: true, force: true });
      this.log.info({ openid: userId, purge }, 'VM deleted');
    });
  }

  /**
   * After a restart: adopt this host's VMs whose process still runs, clean up its dead ones, and
   * remove what no record references (processes, run dirs, TAPs, IPs, slots, this host's stale
   * locks). VMs, locks, slots and addresses of other hosts are never touched. Records from before
   * the host registry (no `host_id`) are claimed only when no other host is live: they can only
   * come from a single-host installation being upgraded.
   */
  async reconcile(): Promise<{ adopted: string[]; cleaned: string[]; orphans: number }> {
    const store = this.deps.store;
    const locks = await store.clearLocks(this.lockPrefix);
    if (locks > 0) this.log.info({ locks }, 'removed locks left by a previous orchestrator of this host');
    const adopted: string[] = [];
    const cleaned: string[] = [];
    const keepRunDirs = new Set<string>();
    const keepTaps = new Set<string>();
    const livePids = new Set<number>();
    const others = await this.peers.othersLive();
    const claimLegacy = others.length === 0;
    const records = await store.list();
    const ownerOf = new Map(records.map((vm) => [vm.user_id, vm.host_id]));
    let legacyLeft = 0;
    for (const record of records) {
      if (record.host_id === undefined && !claimLegacy) {
        legacyLeft++;
        continue;
      }
      if (record.host_id !== undefined && record.host_id !== this.cfg.host.id) continue;
      const vm = this.stamp(record);
      if (record.host_id === undefined) {
        ownerOf.set(vm.user_id, vm.host_id);
        await store.put(vm);
      }
      const handle = vm.runtime.handle;
      const alive =
        handle && this.deps.driver ? (await this.deps.driver.status(handle)) === 'running' : false;
      if (alive && handle && vm.state === 'running') {
        adopted.push(vm.user_id);
        await store.reserveSlot(vm.user_id, 0);
        keepRunDirs.add(handle.runDir);
        livePids.add(handle.pid);
        if (vm.runtime.tapName) keepTaps.add(vm.runtime.tapName);
        continue;
      }
      if (handle || vm.state === 'running' || vm.state === 'creating') {
        await this.releaseResources(vm, false);
        cleaned.push(vm.user_id);
        const state = vm.state === 'error' ? 'error' : 'stopped';
        await store.put({
          ...vm,
          state,
          ip: null,
          ssh: null,
          agent_url: null,
          runtime: { ...vm.runtime, handle: null },
        });
      }
    }
    if (legacyLeft > 0) {
      this.log.warn(
        { records: legacyLeft, liveHosts: others },
        'VM records without host_id left alone: other hosts are live (see README, Several hosts)',
      );
    }
    // IPs and slots nobody running owns. An address held for another host's VM stays: that
    // host uses the same VM_SUBNET, which registration refuses, but never break its VMs.
    const allocations = await store.ipAllocations();
    for (const [ip, owner] of Object.entries(allocations)) {
      const ownerHost = ownerOf.get(owner);
      if (ownerHost !== undefined && ownerHost !== this.cfg.host.id) {
        this.log.warn({ ip, openid: owner, host: ownerHost }, 'address of another host in this pool; kept');
        continue;
      }
      if (!adopted.includes(owner)) await store.releaseIp(ip, owner);
    }
    for (const owner of await store.activeUserIds())
      if (!adopted.includes(owner)) await store.releaseSlot(owner);
    if (claimLegacy) await store.dropLegacyActive();
    // Processes and run dirs under SOCKET_DIR no record references.
    let orphans = 0;
    for (const p of await findProcesses(`${this.cfg.socketDir}/vm-`)) {
      // QEMU carries `moltage-vm-<id>` in its name; Firecracker its `--api-sock <runDir>/…`.
      const ours = p.args.some((a) => a.includes('moltage-vm-') || a === '--api-sock');
      if (livePids.has(p.pid) || !ours) continue;
      this.log.warn({ pid: p.pid }, 'killing an orphaned VM process');
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
      await waitForExit(p.pid, 5000);
      orphans++;
    }
    const entries = await readdir(this.cfg.socketDir).catch(() => [] as string[]);
    for (const name of entries) {
      const dir = join(this.cfg.socketDir, name);
      if (name.startsWith('vm-') && !keepRunDirs.has(dir)) {
        await rm(dir, { recursive: true, force: true });
        orphans++;
      }
    }
    for (const tap of await this.deps.network.orphans(keepTaps)) {
      await this.deps.network.removeOrphan(tap);
      orphans++;
    }
    this.log.info(
      { adopted: adopted.length, cleaned: cleaned.length, orphans },
      'reconciled VMs with the host',
    );
    return { adopted, cleaned, orphans };
  }

  /** Stops VMs with no activity for `idleTimeoutS`; checks every `intervalMs`. */
  startIdleReaper(idleTimeoutS: number, intervalMs: number): void {
    if (idleTimeoutS <= 0) return;
    this.reaper = setInterval(() => {
      this.reapIdle(idleTimeoutS).catch((err) => this.log.warn({ err }, 'idle reaper failed'));
    }, intervalMs);
    this.reaper.unref();
  }

  async reapIdle(idleTimeoutS: number): Promise<string[]> {
    const stopped: string[] = [];
    const cutoff = Date.now() - idleTimeoutS * 1000;
    for (const vm of await this.own()) {
      if (vm.state !== 'running' || Date.parse(vm.last_active_at) > cutoff) continue;
      try {
        await this.stop(vm.user_id);
        stopped.push(vm.user_id);
        this.log.info({ openid: vm.user_id, idleTimeoutS }, 'stopped idle VM');
      } catch (err) {
        if (!(err instanceof OrchestratorError && err.code === 'ORCH_VM_BUSY')) throw err;
      }
    }
    return stopped;
  }

  stopIdleReaper(): void {
    if (this.reaper) clearInterval(this.reaper);
    this.reaper = undefined;
  }

  /**
   * Notices this host's VMs whose process ended on its own (killed, crashed, powered off from
   * inside) every `intervalMs`: see {@link releaseExited}.
   */
  startExitWatch(intervalMs: number): void {
    this.exitWatch = setInterval(() => {
      if (this.exitCheck) return;
      this.exitCheck = this.releaseExited()
        .catch((err) => this.log.warn({ err }, 'checking VM processes failed'))
        .finally(() => {
          this.exitCheck = undefined;
        });
    }, intervalMs);
    this.exitWatch.unref();
  }

  /** Stops the watch and waits for a check in progress (before Redis is closed). */
  async stopExitWatch(): Promise<void> {
    if (this.exitWatch) clearInterval(this.exitWatch);
    this.exitWatch = undefined;
    await this.exitCheck;
  }

  /**
   * Records `running` whose VM process is gone become `stopped`, and their IP, TAP, slot and run
   * dir are freed at once — not held until the user's next message or the idle reaper; the next
   * create starts the VM again on the same data disk. A VM busy with another operation is left to
   * that operation. Returns the users whose VM was found gone.
   */
  async releaseExited(): Promise<string[]> {
    const driver = this.deps.driver;
    if (!driver) return [];
    const gone: string[] = [];
    for (const vm of await this.own()) {
      const handle = vm.runtime.handle;
      if (vm.state !== 'running' || !handle || (await driver.status(handle)) !== 'stopped') continue;
      try {
        await this.withLock(vm.user_id, 0, async () => {
          // Under the lock: still the same VM (a create may have replaced it meanwhile), still gone.
          const current = await this.deps.store.get(vm.user_id);
          const h = current?.runtime.handle;
          if (
            current?.state !== 'running' ||
            !h ||
            current.runtime.vmId !== vm.runtime.vmId ||
            (await driver.status(h)) !== 'stopped'
          ) {
            return;
          }
          this.log.warn(
            { openid: vm.user_id, vmId: current.runtime.vmId, pid: h.pid },
            'VM process ended on its own; freeing its resources (the next create starts it again)',
          );
          await this.releaseResources(current, false);
          await this.deps.store.put(
            this.stamp({
              ...current,
              state: 'stopped',
              ip: null,
              ssh: null,
              agent_url: null,
              runtime: { ...current.runtime, handle: null },
            }),
          );
          gone.push(vm.user_id);
        });
      } catch (err) {
        if (!(err instanceof OrchestratorError && err.code === 'ORCH_VM_BUSY')) throw err;
      }
    }
    return gone;
  }

  /** This host's running VMs. */
  async runningCount(): Promise<number> {
    return (await this.own()).filter((v) => v.state === 'running').length;
  }

  /** This host's VMs that hold resources (stopped on exit unless VM_KEEP_ON_EXIT). */
  async liveOwn(): Promise<VmRecord[]> {
    return (await this.own())
      .filter((vm) => vm.state === 'running' || vm.state === 'creating')
      .map(publicRecord);
  }
}
