import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The bridge's Prometheus metrics, on a registry of their own so several bridges can live in one
 * process (tests). Names are documented in apps/bridge/README.md.
 */
export function createMetrics(queueStats: () => Promise<{ depth: number; pending: number }>) {
  const registry = new Registry();
  // Node's process metrics: CPU, memory, event-loop lag, GC.
  collectDefaultMetrics({ register: registry });
  const pushes = new Counter({
    name: 'moltage_bridge_pushes_total',
    help: 'WeChat pushes received on POST /wechat, by outcome (queued, duplicate, or the refusal reason)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const acks = new Counter({
    name: 'moltage_bridge_acks_total',
    help: 'Pushes answered with "success" (queued or duplicate)',
    registers: [registry],
  });
  const dedupHits = new Counter({
    name: 'moltage_bridge_dedup_hits_total',
    help: 'Pushes recognised as a retry of one already queued',
    registers: [registry],
  });
  const ackSeconds = new Histogram({
    name: 'moltage_bridge_ack_duration_seconds',
    help: 'Time from receiving a push to answering it',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const replyLatency = new Histogram({
    name: 'moltage_bridge_reply_latency_seconds',
    help: 'Time from receiving a user message to sending the first message of its reply',
    buckets: [0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
    registers: [registry],
  });
  const sends = new Counter({
    name: 'moltage_bridge_wechat_sends_total',
    help: 'Customer-service messages by outcome (sent, failed, skipped)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const wechatErrors = new Counter({
    name: 'moltage_bridge_wechat_errors_total',
    help: 'WeChat API errors by errcode (http and timeout for transport failures)',
    labelNames: ['errcode'] as const,
    registers: [registry],
  });
  const dispatches = new Counter({
    name: 'moltage_bridge_agent_dispatches_total',
    help: 'Messages posted to agents, by target (vm, bound) and outcome',
    labelNames: ['target', 'outcome'] as const,
    registers: [registry],
  });
  const callbacks = new Counter({
    name: 'moltage_bridge_callbacks_total',
    help: 'POST /callback requests by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const processed = new Counter({
    name: 'moltage_bridge_entries_processed_total',
    help: 'Queue entries processed, by kind and outcome (done, retried, given_up, handed_back)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  const claimed = new Counter({
    name: 'moltage_bridge_claimed_total',
    help: 'Queue notifications taken over from a worker that stopped renewing them (crash recovery)',
    registers: [registry],
  });
  const deferredSteps = new Counter({
    name: 'moltage_bridge_deferred_steps_total',
    help: 'Queue steps that waited because many pushes were waiting for their ack (acks go first)',
    registers: [registry],
  });
  new Gauge({
    name: 'moltage_bridge_queue_depth',
    help: 'Entries waiting in user inboxes (all bridge processes)',
    registers: [registry],
    async collect() {
      this.set((await queueStats()).depth);
    },
  });
  new Gauge({
    name: 'moltage_bridge_queue_pending',
    help: 'Queue notifications delivered to a worker and not acknowledged yet',
    registers: [registry],
    async collect() {
      this.set((await queueStats()).pending);
    },
  });
  return {
    registry,
    pushes,
    acks,
    dedupHits,
    ackSeconds,
    replyLatency,
    sends,
    wechatErrors,
    dispatches,
    callbacks,
    processed,
    claimed,
    deferredSteps,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
