import { createHash } from 'node:crypto';

/**
 * The VM host key the gateway trusted the first time it reached a user's VM. Guests keep their
 * host key on the user's data disk, so it survives stop/start; a VM record created anew (its
 * `created_at` changed: the VM was deleted and may have a fresh disk) is trusted on first use again.
 */
export interface HostKeyPin {
  /** base64 sha256 of the SSH host key blob */
  sha256: string;
  /** `created_at` of the VM record the key was first seen with */
  vmCreatedAt: string | null;
  pinnedAt: string;
}

export type HostKeyVerdict =
  | { kind: 'match' }
  | { kind: 'pin'; pin: HostKeyPin; replaces: HostKeyPin | null }
  | { kind: 'mismatch'; expected: string; presented: string };

export function hostKeySha256(blob: Buffer): string {
  return createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** Decides whether the host key a VM presented is the one pinned for its user. */
export function checkHostKey(
  pin: HostKeyPin | null,
  presentedSha256: string,
  vmCreatedAt: string | null,
  now: Date,
): HostKeyVerdict {
  const fresh: HostKeyPin = { sha256: presentedSha256, vmCreatedAt, pinnedAt: now.toISOString() };
  if (pin === null) return { kind: 'pin', pin: fresh, replaces: null };
  // A new VM record starts a new trust period; re-pinning also when the key is unchanged ties
  // the pin to the current record, so a later record change cannot re-open trust-on-first-use.
  const recordChanged = vmCreatedAt !== null && pin.vmCreatedAt !== vmCreatedAt;
  if (recordChanged) return { kind: 'pin', pin: fresh, replaces: pin };
  if (pin.sha256 === presentedSha256) return { kind: 'match' };
  return { kind: 'mismatch', expected: pin.sha256, presented: presentedSha256 };
}
