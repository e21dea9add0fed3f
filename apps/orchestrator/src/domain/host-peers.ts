/** This orchestrator's place in the host registry. */
export interface HostIdentity {
  /** HOST_ID: VM records name it; lock values start with `<id>:`. */
  id: string;
  /** ORCHESTRATOR_PUBLIC_URL, once known (with PORT=0 only after listening). */
  url(): string | null;
}

/** What the VM manager needs from the host registry (adapters/redis/host-registry.ts). */
export interface HostPeers {
  /** True while the host's heartbeat has not expired. */
  isLive(hostId: string): Promise<boolean>;
  /** Ids of the live hosts other than this one. */
  othersLive(): Promise<string[]>;
  /** This host's VM slots changed: refresh its registry entry soon. */
  changed(): void;
}

/** Peers for a lone orchestrator (no registry): nobody else is live. */
export const NO_PEERS: HostPeers = {
  isLive: async () => false,
  othersLive: async () => [],
  changed: () => {},
};
