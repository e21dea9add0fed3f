import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export type AuthMethod = 'password' | 'publickey';
export type AuthFailureReason = 'invalid' | 'rate_limited';
export type ChannelKind = 'shell' | 'exec' | 'subsystem' | 'direct-tcpip';

/** The gateway's Prometheus metrics (README.md → Operations → Metrics). */
export interface GatewayMetrics {
  registry: Registry;
  connectionOpened(): void;
  connectionClosed(): void;
  authSucceeded(method: AuthMethod): void;
  authFailed(method: AuthMethod, reason: AuthFailureReason): void;
  sessionOpened(): void;
  sessionClosed(): void;
  channelOpened(kind: ChannelKind): void;
  channelClosed(kind: ChannelKind): void;
  /** `to_vm`: client → VM; `to_client`: VM → client. */
  bytes(direction: 'to_vm' | 'to_client', n: number): void;
  vmStart(outcome: 'ok' | 'error'): void;
  upstreamConnected(seconds: number): void;
  upstreamFailed(reason: 'unreachable' | 'host_key_mismatch' | 'auth'): void;
}

export function createMetrics(registry = new Registry()): GatewayMetrics {
  const connections = new Gauge({
    name: 'moltage_ssh_connections',
    help: 'Open client connections (authenticated or not)',
    registers: [registry],
  });
  const connectionsTotal = new Counter({
    name: 'moltage_ssh_connections_total',
    help: 'Client connections accepted',
    registers: [registry],
  });
  const sessions = new Gauge({
    name: 'moltage_ssh_sessions',
    help: 'Authenticated connections currently open',
    registers: [registry],
  });
  const sessionsTotal = new Counter({
    name: 'moltage_ssh_sessions_total',
    help: 'Authenticated connections',
    registers: [registry],
  });
  const authOk = new Counter({
    name: 'moltage_ssh_auth_success_total',
    help: 'Successful logins by method',
    labelNames: ['method'] as const,
    registers: [registry],
  });
  const authFail = new Counter({
    name: 'moltage_ssh_auth_failures_total',
    help: 'Refused logins by method and reason (invalid credentials or rate limited)',
    labelNames: ['method', 'reason'] as const,
    registers: [registry],
  });
  const channels = new Gauge({
    name: 'moltage_ssh_channels',
    help: 'Open proxied channels by kind',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'moltage_ssh_bytes_total',
    help: 'Channel payload bytes relayed, by direction',
    labelNames: ['direction'] as const,
    registers: [registry],
  });
  const vmStarts = new Counter({
    name: 'moltage_ssh_vm_starts_total',
    help: 'VM starts requested by the gateway, by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const upstreamSeconds = new Histogram({
    name: 'moltage_ssh_upstream_connect_seconds',
    help: 'TCP connect + SSH handshake + login to a VM',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const upstreamFail = new Counter({
    name: 'moltage_ssh_upstream_failures_total',
    help: 'Failed logins to VMs, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Pre-create the common series so dashboards see zeros rather than gaps.
  for (const m of ['password', 'publickey'] as const) {
    authOk.inc({ method: m }, 0);
    for (const r of ['invalid', 'rate_limited'] as const) authFail.inc({ method: m, reason: r }, 0);
  }
  const bytesToVm = bytes.labels({ direction: 'to_vm' });
  const bytesToClient = bytes.labels({ direction: 'to_client' });
  bytesToVm.inc(0);
  bytesToClient.inc(0);

  return {
    registry,
    connectionOpened() {
      connections.inc();
      connectionsTotal.inc();
    },
    connectionClosed: () => connections.dec(),
    authSucceeded: (method) => authOk.inc({ method }),
    authFailed: (method, reason) => authFail.inc({ method, reason }),
    sessionOpened() {
      sessions.inc();
      sessionsTotal.inc();
    },
    sessionClosed: () => sessions.dec(),
    channelOpened: (kind) => channels.inc({ kind }),
    channelClosed: (kind) => channels.dec({ kind }),
    bytes: (direction, n) => (direction === 'to_vm' ? bytesToVm : bytesToClient).inc(n),
    vmStart: (outcome) => vmStarts.inc({ outcome }),
    upstreamConnected: (s) => upstreamSeconds.observe(s),
    upstreamFailed: (reason) => upstreamFail.inc({ reason }),
  };
}
