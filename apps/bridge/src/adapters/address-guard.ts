import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { type BlockedReason, classifyAddress } from '../domain/address-policy.js';

export type BindTargetVerdict =
  | { ok: true; addresses: string[] }
  | { ok: false; problem: 'blocked'; reason: BlockedReason; address: string }
  | { ok: false; problem: 'unresolvable' };

export type Resolver = (host: string) => Promise<string[]>;

/** Resolves a host name to every address the system resolver returns (IPv4 and IPv6). */
export const systemResolver: Resolver = (host) =>
  new Promise((resolve, reject) => {
    dnsLookup(host, { all: true, verbatim: true }, (err, addrs: LookupAddress[]) => {
      if (err) reject(err);
      else resolve(addrs.map((a) => a.address));
    });
  });

/**
 * Decides whether a host may be the target of a user's binding: every address it resolves to
 * must be public unicast (no loopback, private, link-local, metadata, multicast or reserved
 * address), unless `allowPrivate`.
 */
export async function checkBindTarget(
  host: string,
  allowPrivate: boolean,
  resolver: Resolver = systemResolver,
): Promise<BindTargetVerdict> {
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = await resolver(host);
    } catch {
      return { ok: false, problem: 'unresolvable' };
    }
  }
  if (addresses.length === 0) return { ok: false, problem: 'unresolvable' };
  if (!allowPrivate) {
    for (const address of addresses) {
      const reason = classifyAddress(address);
      if (reason) return { ok: false, problem: 'blocked', reason, address };
    }
  }
  return { ok: true, addresses };
}

/**
 * A `lookup` for node:http(s) that refuses to connect to a blocked address, so a host name that
 * resolved to a public address at `bind` time cannot later be pointed at an internal one (DNS
 * rebinding).
 */
export function guardedLookup(resolver: Resolver = systemResolver): LookupFunction {
  return (hostname, options, callback) => {
    const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
    checkBindTarget(host, false, resolver).then(
      (verdict) => {
        if (!verdict.ok) {
          const err = Object.assign(
            new Error(
              verdict.problem === 'blocked'
                ? `refusing to connect to ${verdict.reason} address ${verdict.address}`
                : `cannot resolve ${host}`,
            ),
            { code: verdict.problem === 'blocked' ? 'EADDRBLOCKED' : 'ENOTFOUND' },
          );
          callback(err, '', 0);
          return;
        }
        const picked = verdict.addresses.filter((a) => !options.family || isIP(a) === options.family);
        const list = picked.length > 0 ? picked : verdict.addresses;
        if (options.all) {
          callback(
            null,
            list.map((address) => ({ address, family: isIP(address) })),
          );
        } else {
          const first = list[0] as string;
          callback(null, first, isIP(first));
        }
      },
      (err: Error) => callback(err as NodeJS.ErrnoException, '', 0),
    );
  };
}
