import type { HostKeyPin } from './host-key-pin.js';
import type { FailureCounts } from './rate-limit.js';
import type { VmView } from './route.js';

/** The login secrets the bridge stores (Redis `sshotp:` and `user:`). */
export interface CredentialStore {
  /** The raw JSON at `sshotp:<openid>`, or null. */
  oneTimePassword(openid: string): Promise<string | null>;
  /** Deletes `sshotp:<openid>` only if it still holds `raw`; true when this call consumed it. */
  consumeOneTimePassword(openid: string, raw: string): Promise<boolean>;
  /** The raw JSON at `user:<openid>`, or null. */
  userRecord(openid: string): Promise<string | null>;
}

/** Failed-login counters with a fixed window. `openid` null: only the address is counted. */
export interface FailureCounter {
  counts(address: string, openid: string | null): Promise<FailureCounts>;
  record(address: string, openid: string | null): Promise<FailureCounts>;
  /** Takes back one `record` (an attempt counted up front that did not fail). */
  release(address: string, openid: string | null): Promise<void>;
}

export interface HostKeyPins {
  get(openid: string): Promise<HostKeyPin | null>;
  set(openid: string, pin: HostKeyPin): Promise<void>;
}

/** Reads VM records (`vm:<openid>`). */
export interface VmDirectory {
  get(openid: string): Promise<VmView | null>;
}

/** The orchestrator API calls the gateway makes. */
export interface VmControl {
  /** Starts (or creates) the user's VM and waits until it is ready; returns its record. */
  start(openid: string, signal?: AbortSignal): Promise<VmView>;
  /** Marks the VM active so the idle reaper leaves it running. */
  touch(openid: string): Promise<void>;
}
