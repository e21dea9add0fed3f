/** IPv4 helpers and the address plan of a VM subnet (pure). */

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${ip}`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`not an IPv4 address: ${ip}`);
    n = n * 256 + Number(p);
  }
  return n;
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

export interface Subnet {
  cidr: string;
  network: string;
  prefixLen: number;
  broadcast: string;
}

export function parseCidr(cidr: string): Subnet {
  const m = cidr.match(/^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/);
  if (!m) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const prefixLen = Number(m[2]);
  if (prefixLen < 8 || prefixLen > 30) throw new Error(`prefix length must be 8..30: ${cidr}`);
  const size = 2 ** (32 - prefixLen);
  const base = ipToInt(m[1]!);
  const network = base - (base % size);
  return {
    cidr: `${intToIp(network)}/${prefixLen}`,
    network: intToIp(network),
    prefixLen,
    broadcast: intToIp(network + size - 1),
  };
}

export function inSubnet(ip: string, subnet: Subnet): boolean {
  const n = ipToInt(ip);
  return n > ipToInt(subnet.network) && n < ipToInt(subnet.broadcast);
}

/** Guest addresses of `subnet` in order: every host address except `exclude` (gateway, …). */
export function poolAddresses(subnet: Subnet, exclude: string[]): string[] {
  const ex = new Set(exclude);
  const out: string[] = [];
  for (let n = ipToInt(subnet.network) + 1; n < ipToInt(subnet.broadcast); n++) {
    const ip = intToIp(n);
    if (!ex.has(ip)) out.push(ip);
  }
  return out;
}

/** The user-mode DNS forwarder address: the last host address (kept out of the pool). */
export function userModeDnsIp(subnet: Subnet): string {
  return intToIp(ipToInt(subnet.broadcast) - 1);
}

/** A stable locally administered MAC for a guest IP (52:54:00 is QEMU's prefix). */
export function macForIp(ip: string): string {
  const n = ipToInt(ip);
  const b = [
    2,
    0x4d,
    Math.floor(n / 2 ** 24) % 256,
    Math.floor(n / 2 ** 16) % 256,
    Math.floor(n / 256) % 256,
    n % 256,
  ];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}
