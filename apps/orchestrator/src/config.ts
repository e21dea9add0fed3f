import { hostname } from 'node:os';
import { env, HOST_ID_PATTERN, redisEnv } from '@moltage/core';
import { z } from 'zod';
import { parseCidr } from './domain/ip-pool.js';

const ipv4 = z.string().regex(/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/, {
  error: 'must be an IPv4 address',
});
const cidr = z.string().refine(
  (v) => {
    try {
      parseCidr(v);
      return true;
    } catch {
      return false;
    }
  },
  { error: 'must be an IPv4 CIDR like 10.0.1.0/24 (prefix 8..30)' },
);

function isIpv4OrCidr(v: string): boolean {
  const [addr, prefix, ...rest] = v.split('/');
  if (rest.length > 0 || !ipv4.safeParse(addr).success) return false;
  return prefix === undefined || (/^\d{1,2}$/.test(prefix) && Number(prefix) <= 32);
}

/** The orchestrator's environment (DESIGN.md "Environment variables", README for extras). */
export const configSchema = z
  .object({
    PORT: env.port(8080),
    HOST: z.string().default('0.0.0.0'),
    ...redisEnv,
    /** This host's id in the host registry; VM records name it (`host_id`). */
    HOST_ID: z
      .string()
      .regex(HOST_ID_PATTERN, {
        error: 'must be 1-63 characters of A-Z a-z 0-9 . _ - (starting alphanumeric)',
      })
      .default(() => defaultHostId()),
    /** The API URL the bridges and SSH gateways use to reach this orchestrator. */
    ORCHESTRATOR_PUBLIC_URL: env
      .url()
      .transform((u) => u.replace(/\/+$/, ''))
      .optional(),
    /** How often the host registry entry (capacity, heartbeat) is refreshed. */
    HOST_HEARTBEAT_MS: env.int(5000, 100),
    /** The entry expires this long after the last heartbeat (host considered down). */
    HOST_TTL_MS: env.int(15_000, 300),
    LOG_LEVEL: env.logLevel(),
    ORCHESTRATOR_TOKEN: z.string().min(16, { error: 'must be at least 16 characters' }).optional(),
    VM_DRIVER: z.enum(['auto', 'qemu', 'firecracker']).default('auto'),
    QEMU_BIN: z.string().default('qemu-system-x86_64'),
    QEMU_ACCEL: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
    /** Unset: the image's `tcgTbMib` (agent 512), else 32; 0 = QEMU's default (1 GiB). */
    QEMU_TCG_TB_MIB: z.coerce.number().int().min(0).optional(),
    FIRECRACKER_BIN: z.string().default('/usr/local/bin/firecracker'),
    JAILER_BIN: z.string().optional(),
    /** Unprivileged user/group Firecracker runs as under the jailer. */
    JAILER_UID: env.int(10000, 1),
    JAILER_GID: env.int(10000, 1),
    /** Where the jailer builds chroots; on the same filesystem as VM_DATA_DIR and the images. */
    JAILER_CHROOT_BASE_DIR: z.string().default('/srv/jailer'),
    VM_IMAGE_DIR: z.string().default('/var/lib/moltage/images'),
    /** `tiny-agent`: the tiny image with a minimal test agent (whole-stack tests). */
    VM_IMAGE: z.enum(['agent', 'tiny', 'tiny-agent']).default('agent'),
    KERNEL_PATH: z.string().optional(),
    INITRD_PATH: z.string().optional(),
    BASE_ROOTFS_PATH: z.string().optional(),
    DEFAULT_VCPU: env.int(1, 1),
    /** Unset: the image's default (`memMib` in its manifest: agent 2048), else 512. */
    DEFAULT_MEM_MIB: z.coerce.number().int().min(64).optional(),
    VM_DATA_DISK_MIB: env.int(1024, 64),
    VM_SUBNET: cidr.default('10.0.1.0/24'),
    GATEWAY_IP: ipv4.default('10.0.1.1'),
    BRIDGE_NAME: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,15}$/, { error: 'must be a Linux interface name' })
      .default('fcbr0'),
    VM_NETWORK: z.enum(['tap', 'user']).default('tap'),
    VM_DATA_DIR: z.string().default('/var/lib/firecracker/vms'),
    SOCKET_DIR: z.string().default('/tmp/firecracker/sockets'),
    VM_READY_TIMEOUT_MS: env.int(30_000, 1000),
    VM_STOP_TIMEOUT_MS: env.int(10_000, 0),
    VM_IDLE_TIMEOUT_S: env.int(1800, 0),
    MAX_VMS: env.int(100, 0),
    VM_KEEP_ON_EXIT: env.bool(false),
    GATEWAY_SSH_PUBKEY_PATH: z.string().optional(),
    /**
     * Tap mode: IPv4 addresses or CIDRs of the machines (bridges, SSH gateways on other hosts)
     * allowed to open guests' ssh and agent ports; unset = only this host.
     */
    VM_INGRESS_FROM: z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
      )
      .refine((list) => list.length > 0 && list.every(isIpv4OrCidr), {
        error: 'must be a comma-separated list of IPv4 addresses or CIDRs, e.g. 192.0.2.10,198.51.100.0/28',
      })
      .optional(),
    /** The bridge's callback port on the host (the only host port guests may reach in tap mode). */
    CALLBACK_PORT: env.port(3000),
    LLM_BASE_URL: env.url().optional(),
    LLM_API_KEY: z.string().optional(),
    LLM_MODEL: z.string().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.HOST_TTL_MS < 2 * c.HOST_HEARTBEAT_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['HOST_TTL_MS'],
        message: `must be at least twice HOST_HEARTBEAT_MS (${c.HOST_HEARTBEAT_MS})`,
      });
    }
    const subnet = parseCidr(c.VM_SUBNET);
    const n = c.GATEWAY_IP.split('.').map(Number);
    const s = subnet.network.split('.').map(Number);
    const b = subnet.broadcast.split('.').map(Number);
    const num = (a: number[]) => a.reduce((x, y) => x * 256 + y, 0);
    if (!(num(n) > num(s) && num(n) < num(b))) {
      ctx.addIssue({
        code: 'custom',
        path: ['GATEWAY_IP'],
        message: `must be a host address inside VM_SUBNET ${c.VM_SUBNET}`,
      });
    }
  });

export type Config = z.infer<typeof configSchema>;

/** The machine's hostname as a host id (characters a host id cannot hold become `-`). */
export function defaultHostId(name = hostname()): string {
  const id = name
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63);
  return id === '' ? 'host' : id;
}
