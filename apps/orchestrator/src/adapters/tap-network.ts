import type { VmNetwork } from '../domain/driver.js';
import { macForIp, type Subnet } from '../domain/ip-pool.js';
import type { NetworkProvider } from '../domain/network.js';
import { NetworkSetupError } from '../errors.js';
import { run } from './exec.js';

const TAP_PATTERN = /^mt[0-9a-f]{10}$/;

/** nftables ruleset for the bridge (pure; exported for tests and docs). */
export function tapRuleset(o: {
  table: string;
  bridge: string;
  subnet: Subnet;
  gatewayIp: string;
  callbackPort: number;
  /** Addresses (the bridges and SSH gateways of other machines) allowed to open guest ports. */
  ingressFrom?: string[];
  guestPorts?: { ssh: number; agent: number };
}): string {
  const ingress =
    o.ingressFrom && o.ingressFrom.length > 0 && o.guestPorts
      ? `    oifname "${o.bridge}" ip saddr { ${o.ingressFrom.join(', ')} } tcp dport { ${o.guestPorts.ssh}, ${o.guestPorts.agent} } ct state new accept\n`
      : '';
  const privateRanges =
    '{ 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 100.64.0.0/10, 127.0.0.0/8 }';
  return `table inet ${o.table} {
  chain input {
    type filter hook input priority 0; policy accept;
    iifname "${o.bridge}" ct state established,related accept
    iifname "${o.bridge}" ip daddr ${o.gatewayIp} tcp dport ${o.callbackPort} accept
    iifname "${o.bridge}" drop
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "${o.bridge}" oifname "${o.bridge}" drop
    oifname "${o.bridge}" ct state established,related accept
${ingress}    oifname "${o.bridge}" drop
    iifname "${o.bridge}" ip daddr ${privateRanges} drop
    iifname "${o.bridge}" accept
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    ip saddr ${o.subnet.cidr} oifname != "${o.bridge}" masquerade
  }
}
table bridge ${o.table} {
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "mt*" oifname "mt*" drop
  }
}
`;
}

/**
 * TAP networking: bridge BRIDGE_NAME holds GATEWAY_IP, one TAP per VM (isolated bridge
 * port). nftables: guests reach the host only on the bridge's callback port, never each
 * other, nor private ranges; other egress is masqueraded. Needs root (CAP_NET_ADMIN).
 */
export class TapNetwork implements NetworkProvider {
  readonly mode = 'tap' as const;
  private readonly table: string;

  constructor(
    private readonly o: {
      bridge: string;
      subnet: Subnet;
      gatewayIp: string;
      callbackPort: number;
      guestPorts: { ssh: number; agent: number };
      /** VM_INGRESS_FROM: other machines allowed to reach guests' ssh and agent ports. */
      ingressFrom?: string[];
    },
  ) {
    this.table = `moltage_${o.bridge.replace(/[^A-Za-z0-9_]/g, '_')}`;
  }

  private async ip(args: string[]): Promise<string> {
    return (await run('ip', args, { timeoutMs: 10_000 })).stdout.toString();
  }

  async init(): Promise<void> {
    try {
      const exists = await this.ip(['-o', 'link', 'show', 'dev', this.o.bridge]).then(
        () => true,
        () => false,
      );
      if (!exists) await this.ip(['link', 'add', this.o.bridge, 'type', 'bridge']);
      const addrs = await this.ip(['-o', '-4', 'addr', 'show', 'dev', this.o.bridge]);
      const want = `${this.o.gatewayIp}/${this.o.subnet.prefixLen}`;
      if (!addrs.includes(` ${want} `)) await this.ip(['addr', 'add', want, 'dev', this.o.bridge]);
      await this.ip(['link', 'set', this.o.bridge, 'up']);
      await run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], { timeoutMs: 5000 }).catch(() => {});
      // Replace our tables atomically (delete-if-present + add in one nft transaction).
      const ruleset = `table inet ${this.table}\ndelete table inet ${this.table}\ntable bridge ${this.table}\ndelete table bridge ${this.table}\n${tapRuleset({ ...this.o, table: this.table })}`;
      await run('nft', ['-f', '-'], { input: ruleset, timeoutMs: 10_000 });
    } catch (err) {
      throw new NetworkSetupError(
        `cannot set up bridge ${this.o.bridge} and its firewall (root and nftables needed): ${(err as Error).message}`,
        err,
      );
    }
  }

  /** Removes the firewall tables and the bridge (used by tests and uninstall). */
  async teardown(): Promise<void> {
    await run('nft', ['delete', 'table', 'inet', this.table]).catch(() => {});
    await run('nft', ['delete', 'table', 'bridge', this.table]).catch(() => {});
    await this.ip(['link', 'del', this.o.bridge]).catch(() => {});
  }

  async attach(vm: { vmId: string; userId: string; ip: string }): Promise<VmNetwork> {
    const tapName = `mt${vm.vmId.replace(/^vm-/, '').slice(0, 10)}`;
    if (!TAP_PATTERN.test(tapName)) throw new NetworkSetupError(`bad TAP name ${tapName}`);
    try {
      await this.ip(['tuntap', 'add', 'dev', tapName, 'mode', 'tap']);
      await this.ip(['link', 'set', tapName, 'master', this.o.bridge]);
      await run('bridge', ['link', 'set', 'dev', tapName, 'isolated', 'on'], { timeoutMs: 10_000 });
      await this.ip(['link', 'set', tapName, 'up']);
    } catch (err) {
      await this.ip(['link', 'del', tapName]).catch(() => {});
      throw new NetworkSetupError(
        `cannot create TAP ${tapName} on ${this.o.bridge}: ${(err as Error).message}`,
        err,
      );
    }
    return {
      mode: 'tap',
      tapName,
      mac: macForIp(vm.ip),
      ip: vm.ip,
      gatewayIp: this.o.gatewayIp,
      prefixLen: this.o.subnet.prefixLen,
    };
  }

  async detach(net: VmNetwork): Promise<void> {
    if (net.mode === 'tap') await this.removeOrphan(net.tapName);
  }

  endpoints(net: VmNetwork, guest: { sshPort: number; agentPort: number }) {
    if (net.mode !== 'tap') throw new Error('not a TAP network');
    return { ssh: { host: net.ip, port: guest.sshPort }, agent: { host: net.ip, port: guest.agentPort } };
  }

  hostIpForGuest(): string {
    return this.o.gatewayIp;
  }

  /**
   * Our TAPs (on this orchestrator's bridge) that `keep` does not name. TAPs on other bridges
   * belong to other orchestrators on the same machine and are never listed.
   */
  async orphans(keep: Set<string>): Promise<string[]> {
    const out = await this.ip(['-o', 'link', 'show', 'master', this.o.bridge]);
    const names = [...out.matchAll(/^\d+: ([^:@]+)[:@]/gm)].map((m) => m[1]!.trim());
    return names.filter((n) => TAP_PATTERN.test(n) && !keep.has(n));
  }

  async removeOrphan(name: string): Promise<void> {
    if (!TAP_PATTERN.test(name)) return;
    await this.ip(['link', 'del', name]).catch((err: Error) => {
      if (!/Cannot find device|does not exist/.test(err.message)) throw err;
    });
  }
}
