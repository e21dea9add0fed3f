import { runMain } from '@moltage/core';
import { runSshGateway } from './gateway.js';

runMain('ssh-gateway', async () => {
  const gw = await runSshGateway();
  const shutdown = (signal: string) => {
    gw.logger.info({ signal }, 'shutting down');
    gw.close().then(
      () => process.exit(0),
      (err: Error) => {
        gw.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
});
