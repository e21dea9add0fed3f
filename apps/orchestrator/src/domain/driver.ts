/**
 * The one interface every VM driver (qemu, firecracker) implements. The orchestrator's
 * lifecycle code talks only to this; drivers know nothing about Redis, users or HTTP.
 */

export type DriverName = 'qemu' | 'firecracker';

/** How the guest is connected. `tap`: a TAP device on the host bridge with a static IP. */
export type VmNetwork =
  | {
      mode: 'tap';
      tapName: string;
      mac: string;
      ip: string;
      gatewayIp: string;
      prefixLen: number;
    }
  | {
      /**
       * QEMU user-mode networking; guest ports forwarded to 127.0.0.1 on the host. The guest
       * gets `ip` inside a private user-mode net where the host answers on `gatewayIp`.
       */
      mode: 'user';
      sshHostPort: number;
      agentHostPort: number;
      mac: string;
      ip: string;
      gatewayIp: string;
      prefixLen: number;
      /** Network address of the user-mode net (e.g. 10.0.1.0). */
      netAddress: string;
      /** Address of the user-mode DNS forwarder (must not be a pool address). */
      dnsIp: string;
      /** Guest ports to forward (ssh, agent). */
      sshGuestPort: number;
      agentGuestPort: number;
    };

export interface VmSpec {
  vmId: string;
  userId: string;
  vcpu: number;
  memMib: number;
  /** Kernel image (bzImage for qemu, ELF vmlinux for firecracker). */
  kernelPath: string;
  initrdPath?: string;
  /** Extra kernel command-line arguments (console, root device, per-VM settings). */
  kernelArgs: string;
  /** Shared base root filesystem, attached read-only. */
  baseRootfsPath: string;
  /** Per-user writable data disk (holds /home), survives stop/start/reset. */
  dataDiskPath: string;
  /** Small per-VM config disk the guest reads at boot (see the guest contract in README). */
  configDiskPath: string;
  network: VmNetwork;
  /** Directory for this VM's sockets, pid file and console log. */
  runDir: string;
  /**
   * TCG translation cache (MiB) the image asks for (manifest `tcgTbMib`): a large JIT workload
   * such as Node thrashes a small one. The operator's QEMU_TCG_TB_MIB wins.
   */
  tcgTbMib?: number;
}

/**
 * What the orchestrator stores (in the VM record) to find a running VM again after its own
 * restart: enough to adopt or clean up without the driver's in-memory state.
 */
export interface VmHandle {
  driver: DriverName;
  pid: number;
  /** QMP socket (qemu) or API socket (firecracker). */
  controlSocket: string;
  runDir: string;
  consoleLog?: string;
}

export type VmProcessState = 'running' | 'paused' | 'stopped';

export interface DriverAvailability {
  ok: boolean;
  /** Why the driver cannot run here, in one line an operator can act on. */
  reason?: string;
  /** Extra facts for /health (e.g. accel: 'kvm' | 'tcg'). */
  details?: Record<string, unknown>;
}

export interface VmDriver {
  readonly name: DriverName;
  /** Whether this driver can boot VMs on this host; cached after the first call. */
  availability(): Promise<DriverAvailability>;
  /** Boots the VM; resolves once the hypervisor process runs the guest (not guest readiness). */
  start(spec: VmSpec): Promise<VmHandle>;
  /** Asks the guest to shut down (ACPI / Ctrl-Alt-Del), waits up to `timeoutMs`, then kills. */
  stop(handle: VmHandle, opts?: { timeoutMs?: number }): Promise<void>;
  /** Kills the hypervisor process at once. */
  kill(handle: VmHandle): Promise<void>;
  /** State of a VM from its process and control socket; 'stopped' when neither is alive. */
  status(handle: VmHandle): Promise<VmProcessState>;
}
