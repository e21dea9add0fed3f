import { env } from '@moltage/core';
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

/** The orchestrator's environment (DESIGN.md "Environment variables", README for extras). */
export const configSchema = z
  .object({
    PORT: env.port(8080),
    HOST: z.string().default('0.0.0.0'),
    REDIS_URL: env.redisUrl(),
    LOG_LEVEL: env.logLevel(),
    ORCHESTRATOR_TOKEN: z.string().min(16, { error: 'must be at least 16 characters' }).optional(),
    VM_DRIVER: z.enum(['auto', 'qemu', 'firecracker']).default('auto'),
    QEMU_BIN: z.string().default('qemu-system-x86_64'),
    QEMU_ACCEL: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
    QEMU_TCG_TB_MIB: env.int(32, 0),
    FIRECRACKER_BIN: z.string().default('/usr/local/bin/firecracker'),
    JAILER_BIN: z.string().optional(),
    /** Unprivileged user/group Firecracker runs as under the jailer. */
    JAILER_UID: env.int(10000, 1),
    JAILER_GID: env.int(10000, 1),
    /** Where the jailer builds chroots; on the same filesystem as VM_DATA_DIR and the images. */
    JAILER_CHROOT_BASE_DIR: z.string().default('/srv/jailer'),
    VM_IMAGE_DIR: z.string().default('/var/lib/moltage/images'),
    VM_IMAGE: z.enum(['agent', 'tiny']).default('agent'),
    KERNEL_PATH: z.string().optional(),
    INITRD_PATH: z.string().optional(),
    BASE_ROOTFS_PATH: z.string().optional(),
    DEFAULT_VCPU: env.int(1, 1),
    DEFAULT_MEM_MIB: env.int(512, 64),
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
    /** The bridge's callback port on the host (the only host port guests may reach in tap mode). */
    CALLBACK_PORT: env.port(3000),
    LLM_BASE_URL: env.url().optional(),
    LLM_API_KEY: z.string().optional(),
    LLM_MODEL: z.string().optional(),
  })
  .superRefine((c, ctx) => {
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
