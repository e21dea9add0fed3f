/** Every Redis key the orchestrator uses (documented in README.md, "Redis keys"). */
export const keys = {
  /** JSON string: the VM record plus a `runtime` object (pid, sockets, ports). */
  vm: (userId: string) => `vm:${userId}`,
  /** SET of user ids that have a VM record. */
  vmIndex: () => 'vms:all',
  /** SET of user ids whose VM holds host resources (creating or running); MAX_VMS counts it. */
  vmActive: () => 'vms:active',
  /** HASH ip → user id: the allocated addresses of a subnet. */
  ipPool: (subnetCidr: string) => `ippool:${subnetCidr}`,
  /** STRING lock token: one lifecycle operation per user at a time. */
  vmLock: (userId: string) => `lock:vm:${userId}`,
  lockPattern: () => 'lock:vm:*',
};
