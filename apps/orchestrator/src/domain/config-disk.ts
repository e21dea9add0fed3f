/**
 * The per-VM config disk (guest contract, images/README.md): the magic line
 * `MOLTAGE_CONFIG_V1`, then `key=value` lines, NUL-padded to a multiple of 4096 bytes
 * (at most 64 KiB). Values are single lines; the guest reads the first occurrence of a key.
 */
export const CONFIG_MAGIC = 'MOLTAGE_CONFIG_V1';
export const CONFIG_MAX_BYTES = 65536;

export type GuestConfig = Record<string, string | number | undefined>;

export function encodeConfigDisk(config: GuestConfig): Buffer {
  const lines = [CONFIG_MAGIC];
  for (const [key, raw] of Object.entries(config)) {
    if (raw === undefined) continue;
    if (!/^[a-z][a-z0-9_]*$/.test(key)) throw new Error(`invalid guest config key ${key}`);
    const value = String(raw);
    if (/[\n\r\0]/.test(value)) throw new Error(`guest config value of ${key} must be a single line`);
    lines.push(`${key}=${value}`);
  }
  const text = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
  if (text.length > CONFIG_MAX_BYTES)
    throw new Error(`guest config is ${text.length} bytes; at most ${CONFIG_MAX_BYTES}`);
  const size = Math.max(4096, Math.ceil(text.length / 4096) * 4096);
  const out = Buffer.alloc(size);
  text.copy(out);
  return out;
}

export function decodeConfigDisk(buf: Buffer): Record<string, string> {
  const text = buf.toString('utf8').replace(/\0+$/, '');
  const [magic, ...lines] = text.split('\n');
  if (magic !== CONFIG_MAGIC) throw new Error('not a Moltage config disk');
  const out: Record<string, string> = {};
  for (const line of lines) {
    const at = line.indexOf('=');
    if (at <= 0) continue;
    const key = line.slice(0, at);
    if (!(key in out)) out[key] = line.slice(at + 1);
  }
  return out;
}

/**
 * Rewrites a URL on the host's loopback to the address under which the guest sees the host
 * (user networking), so the guest reaches e.g. a local LLM or the bridge's callback.
 */
export function rewriteLoopbackUrl(url: string | undefined, hostIpForGuest: string): string | undefined {
  if (!url) return url;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  const h = u.hostname;
  if (h === 'localhost' || h === '[::1]' || h === '::1' || /^127\./.test(h) || h === '0.0.0.0') {
    u.hostname = hostIpForGuest;
    return u.toString();
  }
  return url;
}
