import { z } from 'zod';

/** What the gateway needs from a VM record (`vm:<openid>`, DESIGN.md "Orchestrator API"). */
export interface VmView {
  userId: string;
  state: 'creating' | 'running' | 'stopped' | 'error';
  ssh: { host: string; port: number } | null;
  createdAt: string | null;
}

const vmRecordSchema = z.object({
  user_id: z.string(),
  state: z.enum(['creating', 'running', 'stopped', 'error']),
  ssh: z
    .object({ host: z.string().min(1).max(255), port: z.number().int().min(1).max(65535) })
    .nullable()
    .optional(),
  created_at: z.string().nullable().optional(),
});

/** Parses a VM record (Redis value or API body); null when it is not one. */
export function parseVmRecord(json: unknown): VmView | null {
  const parsed = vmRecordSchema.safeParse(json);
  if (!parsed.success) return null;
  const r = parsed.data;
  return { userId: r.user_id, state: r.state, ssh: r.ssh ?? null, createdAt: r.created_at ?? null };
}

/** How the gateway logs in to a VM's sshd. */
export interface UpstreamAuth {
  /** The gateway's upstream private key (OpenSSH format), which every guest trusts. */
  privateKey: string;
  /** Legacy fallback, tried only after the key is refused. */
  password?: string;
}

export interface UpstreamTarget {
  host: string;
  port: number;
  username: string;
  auth: UpstreamAuth;
  /** Ties the pinned host key to this VM record (see host-key-pin.ts). */
  vmCreatedAt: string | null;
}

export type RouteRejection = {
  kind: 'reject';
  code: 'SSHGW_VM_START_FAILED' | 'SSHGW_NO_VM_ENDPOINT';
  /** For the log. */
  reason: string;
};

export type Route = { kind: 'upstream'; target: UpstreamTarget } | { kind: 'start' } | RouteRejection;

export interface RouteOptions {
  /** The account inside the VM (VM_SSH_USER). */
  username: string;
  privateKey: string;
  /** VM_SSH_PASS when the legacy fallback is on. */
  legacyPassword?: string;
  /** True once the gateway asked the orchestrator to start this VM: do not ask twice. */
  afterStart: boolean;
}

/**
 * Routing as a function: the authenticated login and its VM record (null when there is none)
 * decide where the session goes. A user only ever reaches the record stored under their own
 * openid, and a record that names another user is refused.
 */
export function resolveUpstream(login: { openid: string }, vm: VmView | null, opts: RouteOptions): Route {
  if (vm !== null && vm.userId !== login.openid) {
    return { kind: 'reject', code: 'SSHGW_NO_VM_ENDPOINT', reason: `VM record belongs to ${vm.userId}` };
  }
  if (vm === null || vm.state !== 'running') {
    if (!opts.afterStart) return { kind: 'start' };
    return {
      kind: 'reject',
      code: 'SSHGW_VM_START_FAILED',
      reason: vm === null ? 'no VM record after start' : `VM is ${vm.state} after start`,
    };
  }
  if (vm.ssh === null)
    return { kind: 'reject', code: 'SSHGW_NO_VM_ENDPOINT', reason: 'VM record has no ssh endpoint' };
  const auth: UpstreamAuth = { privateKey: opts.privateKey };
  if (opts.legacyPassword !== undefined) auth.password = opts.legacyPassword;
  return {
    kind: 'upstream',
    target: {
      host: vm.ssh.host,
      port: vm.ssh.port,
      username: opts.username,
      auth,
      vmCreatedAt: vm.createdAt,
    },
  };
}
