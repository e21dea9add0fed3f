import type { VmHandle } from './driver.js';

export type VmState = 'creating' | 'running' | 'stopped' | 'error';

/** The VM record of DESIGN.md, as the API returns it. */
export interface VmRecord {
  user_id: string;
  state: VmState;
  ip: string | null;
  ssh: { host: string; port: number } | null;
  agent_url: string | null;
  agent_token: string;
  created_at: string;
  last_active_at: string;
  vcpu: number;
  mem_mib: number;
  callback_url?: string | null;
  error?: string | null;
  /** The host that owns the VM and its data disk (HOST_ID); absent on records from before. */
  host_id?: string;
  /** That host's orchestrator API (ORCHESTRATOR_PUBLIC_URL), as known when the record was written. */
  host_url?: string | null;
  /** When the running VM booted (null unless running): its uptime. */
  started_at?: string | null;
  /** Resident memory of its hypervisor process in MiB (GET only, from the owner host; else null). */
  rss_mib?: number | null;
}

/** What the orchestrator keeps beside the record (in the same Redis value) to manage the VM. */
export interface VmRuntime {
  vmId: string;
  handle: VmHandle | null;
  network: 'user' | 'tap';
  tapName?: string;
  sshHostPort?: number;
  agentHostPort?: number;
  callbackToken?: string;
  startedAt?: string;
  /** The IP pool (VM_SUBNET of the owner host) `ip` was taken from. */
  subnet?: string;
}

export interface StoredVm extends VmRecord {
  runtime: VmRuntime;
}

/** The public record (what the API returns): the stored value without runtime details. */
export function publicRecord(vm: StoredVm): VmRecord {
  const { runtime, ...rec } = vm;
  return { ...rec, started_at: vm.state === 'running' ? (runtime.startedAt ?? null) : null };
}

/** User ids are WeChat openids or admin-chosen names: a safe file and key component. */
export const USER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
