import { isIP } from 'node:net';

/**
 * Why an address may not be the target of a `bind` (SSRF protection). `null` means the address
 * is public unicast and allowed.
 */
export type BlockedReason =
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'metadata'
  | 'multicast'
  | 'unspecified'
  | 'shared'
  | 'reserved';

/** Well-known cloud metadata services (AWS/GCP/Azure/OpenStack, ECS, Alibaba Cloud, AWS IPv6). */
const METADATA_V4 = new Set(['169.254.169.254', '169.254.170.2', '169.254.169.253', '100.100.100.200']);

interface V4Range {
  base: number;
  bits: number;
  reason: BlockedReason;
}

function v4ToInt(ip: string): number {
  const [a = 0, b = 0, c = 0, d = 0] = ip.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

function intToV4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function r(cidr: string, reason: BlockedReason): V4Range {
  const [base = '', bits = '0'] = cidr.split('/');
  return { base: v4ToInt(base), bits: Number(bits), reason };
}

const V4_RANGES: V4Range[] = [
  r('0.0.0.0/8', 'unspecified'),
  r('10.0.0.0/8', 'private'),
  r('100.64.0.0/10', 'shared'),
  r('127.0.0.0/8', 'loopback'),
  r('169.254.0.0/16', 'link-local'),
  r('172.16.0.0/12', 'private'),
  r('192.0.0.0/24', 'reserved'),
  r('192.0.2.0/24', 'reserved'),
  r('192.88.99.0/24', 'reserved'),
  r('192.168.0.0/16', 'private'),
  r('198.18.0.0/15', 'reserved'),
  r('198.51.100.0/24', 'reserved'),
  r('203.0.113.0/24', 'reserved'),
  r('224.0.0.0/4', 'multicast'),
  r('240.0.0.0/4', 'reserved'),
];

function inRange(n: number, range: V4Range): boolean {
  if (range.bits === 0) return true;
  const mask = (0xffffffff << (32 - range.bits)) >>> 0;
  return (n & mask) >>> 0 === (range.base & mask) >>> 0;
}

function classifyV4(ip: string): BlockedReason | null {
  if (METADATA_V4.has(ip)) return 'metadata';
  const n = v4ToInt(ip);
  for (const range of V4_RANGES) if (inRange(n, range)) return range.reason;
  return null;
}

/** Expands an IPv6 address (zone id and embedded IPv4 allowed) to eight 16-bit groups. */
function v6Groups(ip: string): number[] | null {
  let s = ip.toLowerCase();
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // A trailing dotted IPv4 (::ffff:1.2.3.4) becomes two groups.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (isIP(tail) !== 4) return null;
    const n = v4ToInt(tail);
    s = `${s.slice(0, lastColon + 1)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((h) => Number.parseInt(h, 16)));
  const head = parse(halves[0] ?? '');
  const tailGroups = halves.length === 2 ? parse(halves[1] ?? '') : [];
  const missing = 8 - head.length - tailGroups.length;
  if (halves.length === 1 && missing !== 0) return null;
  if (missing < 0) return null;
  const groups = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tailGroups];
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return null;
  return groups;
}

function embeddedV4(hi: number, lo: number): string {
  return intToV4(((hi << 16) | lo) >>> 0);
}

function classifyV6(ip: string): BlockedReason | null {
  const g = v6Groups(ip);
  if (!g) return 'reserved';
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0] = g;
  const zeroPrefix = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0;
  if (zeroPrefix && g5 === 0 && g6 === 0 && g7 === 0) return 'unspecified';
  if (zeroPrefix && g5 === 0 && g6 === 0 && g7 === 1) return 'loopback';
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d): judge the IPv4 address.
  if (zeroPrefix && (g5 === 0xffff || g5 === 0))
    return classifyV4(embeddedV4(g6, g7)) ?? (g5 === 0 ? 'reserved' : null);
  // NAT64 well-known prefix 64:ff9b::/96 carries an IPv4 address; 64:ff9b:1::/48 is local use.
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) {
    return classifyV4(embeddedV4(g6, g7));
  }
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 1) return 'private';
  // 6to4 (2002::/16) embeds an IPv4 address in groups 1–2.
  if (g0 === 0x2002) return classifyV4(embeddedV4(g1, g2)) ?? null;
  if (
    g0 === 0xfd00 &&
    g1 === 0x0ec2 &&
    g7 === 0x0254 &&
    g2 === 0 &&
    g3 === 0 &&
    g4 === 0 &&
    g5 === 0 &&
    g6 === 0
  ) {
    return 'metadata';
  }
  if ((g0 & 0xfe00) === 0xfc00) return 'private';
  if ((g0 & 0xffc0) === 0xfe80) return 'link-local';
  if ((g0 & 0xffc0) === 0xfec0) return 'private';
  if ((g0 & 0xff00) === 0xff00) return 'multicast';
  if (g0 === 0x2001 && g1 === 0x0db8) return 'reserved';
  if (g0 === 0x2001 && g1 < 0x0200) return 'reserved'; // 2001::/23 IETF protocol assignments (Teredo, ORCHID, …)
  if (g0 === 0x0100 && g1 === 0 && g2 === 0 && g3 === 0) return 'reserved'; // discard-only 100::/64
  if ((g0 & 0xe000) !== 0x2000) return 'reserved'; // outside global unicast 2000::/3
  return null;
}

/** Classifies an IP address literal; anything that is not an IP address is `reserved`. */
export function classifyAddress(ip: string): BlockedReason | null {
  const family = isIP(ip);
  if (family === 4) return classifyV4(ip);
  if (family === 6) return classifyV6(ip);
  return 'reserved';
}

export type BindUrlProblem = 'invalid' | 'scheme';

/**
 * Checks the shape of a `bind` URL (http/https, a host, no embedded credentials). Address checks
 * happen after DNS resolution, see adapters/address-guard.ts.
 */
export function parseBindUrl(input: string): { ok: true; url: URL } | { ok: false; problem: BindUrlProblem } {
  if (input.length > 2048) return { ok: false, problem: 'invalid' };
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return {
      ok: false,
      problem: /^[a-z][a-z0-9+.-]*:/i.test(input) && !/^https?:/i.test(input) ? 'scheme' : 'invalid',
    };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, problem: 'scheme' };
  if (url.hostname === '' || url.username !== '' || url.password !== '')
    return { ok: false, problem: 'invalid' };
  return { ok: true, url };
}

/** What a user may be shown of a bound URL: scheme, host and path, never query or credentials. */
export function displayUrl(input: string): string {
  try {
    const url = new URL(input);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return '(无效网址)';
  }
}

/** The host part of a URL without brackets, as DNS or an IP literal check needs it. */
export function hostOf(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}
