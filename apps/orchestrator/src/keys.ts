import { hostKeys } from '@moltage/core';

/** Every Redis key the orchestrator uses (documented in README.md, "Redis keys"). */
export const keys = {
  /** JSON string: the VM record plus a `runtime` object (pid, sockets, ports). */
  vm: (userId: string) => hostKeys.vm(userId),
  /** SET of user ids that have a VM record (all hosts). */
  vmIndex: () => 'vms:all',
  /** SET of user ids whose VM holds resources on that host (creating or running); MAX_VMS counts it. */
  vmActive: (hostId: string) => `vms:active:${hostId}`,
  /** The single-host active set of releases before the host registry; removed when migrated. */
  legacyVmActive: () => 'vms:active',
  /** HASH ip → user id: the allocated addresses of a subnet (one subnet per host). */
  ipPool: (subnetCidr: string) => `ippool:${subnetCidr}`,
  /** STRING `<host id>:<token>`: one lifecycle operation per user at a time, across all hosts. */
  vmLock: (userId: string) => `lock:vm:${userId}`,
  lockPattern: () => 'lock:vm:*',
  /** JSON string with PX: this host in the host registry (see @moltage/core hosts.ts). */
  host: (hostId: string) => hostKeys.host(hostId),
  /** SORTED SET host id → last heartbeat (ms): the registry's index. */
  hosts: () => hostKeys.hosts(),
};
