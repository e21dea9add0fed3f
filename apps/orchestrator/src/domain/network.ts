import type { VmNetwork } from './driver.js';

/** Host side of a VM's network: user-mode port forwards or a TAP on the bridge. */
export interface NetworkProvider {
  readonly mode: 'user' | 'tap';
  /** One-time host set-up (bridge, firewall); idempotent. */
  init(): Promise<void>;
  /** Prepares the host side for a VM with guest address `ip`; undone by `detach`. */
  attach(vm: { vmId: string; userId: string; ip: string }): Promise<VmNetwork>;
  detach(net: VmNetwork): Promise<void>;
  /** Where clients reach the guest's sshd / agent from the host. */
  endpoints(
    net: VmNetwork,
    guest: { sshPort: number; agentPort: number },
  ): {
    ssh: { host: string; port: number };
    agent: { host: string; port: number };
  };
  /** Address under which the guest reaches the host (callback, LLM). */
  hostIpForGuest(): string;
  /** Host-side leftovers (TAPs) not in `keep`; removed by reconciliation. */
  orphans(keep: Set<string>): Promise<string[]>;
  removeOrphan(name: string): Promise<void>;
}
