import { ConfigError } from './config.js';

/**
 * Runs a service's `main`: a bad config prints every problem (one line each) and exits 1;
 * any other start-up failure prints one readable line and exits 1.
 */
export function runMain(name: string, main: () => Promise<unknown>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      for (const line of err.problems) process.stderr.write(`${name}: ${line}\n`);
    } else {
      const msg = err instanceof Error ? err.message : String(err);
      process.stderr.write(`${name}: ${msg}\n`);
      if (process.env.MOLTAGE_DEBUG) console.error(err);
    }
    process.exit(1);
  });
}
