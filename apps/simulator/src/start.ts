import type { FastifyInstance } from 'fastify';
import { type BuildSimulatorOptions, buildSimulator } from './app.js';
import type { AccountConfig } from './domain/account.js';
import type { Simulator } from './simulator.js';

export interface StartSimulatorOptions extends BuildSimulatorOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

export interface StartedSimulator {
  /** Base URL, e.g. `http://127.0.0.1:41234` (use as WECHAT_API_BASE and, plus `/v1`, as LLM_BASE_URL). */
  url: string;
  /** The account as it is now, credentials included (the bridge under test needs them). */
  readonly account: AccountConfig;
  /** The state handle: users, inboxes, pushes, faults, clock. */
  sim: Simulator;
  app: FastifyInstance;
  close(): Promise<void>;
}

/** Builds the simulator and listens on 127.0.0.1 (by default on a free port): for tests of other services. */
export async function startSimulator(opts: StartSimulatorOptions = {}): Promise<StartedSimulator> {
  const app = buildSimulator(opts);
  try {
    await app.listen({ port: opts.port ?? 0, host: opts.host ?? '127.0.0.1' });
  } catch (err) {
    await app.close();
    throw err;
  }
  const addr = app.server.address();
  if (addr === null || typeof addr === 'string') {
    await app.close();
    throw new Error('simulator: could not determine the listening address');
  }
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    get account() {
      return app.sim.account;
    },
    sim: app.sim,
    app,
    close: () => app.close(),
  };
}
