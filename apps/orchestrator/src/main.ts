import { runMain } from '@moltage/core';
import { runOrchestrator } from './orchestrator.js';

runMain('orchestrator', async () => {
  const orch = await runOrchestrator();
  orch.app.log.info({ url: orch.url }, 'orchestrator listening');
  const shutdown = (signal: string) => {
    orch.app.log.info({ signal }, 'shutting down');
    orch.close().then(
      () => process.exit(0),
      (err) => {
        orch.app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
});
