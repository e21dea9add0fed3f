import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OrchestratorCallError, OrchestratorClient } from './orchestrator-client.js';

/** An orchestrator that answers every request after `delayMs`, as POST /api/v1/vms does while a VM boots. */
async function slowOrchestrator(delayMs: number): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          user_id: 'o1',
          state: 'running',
          ip: '10.0.1.2',
          ssh: { host: '127.0.0.1', port: 22 },
          agent_url: 'http://127.0.0.1:1/webhook',
          agent_token: 't',
          created_at: new Date().toISOString(),
          last_active_at: new Date().toISOString(),
          vcpu: 1,
          mem_mib: 512,
        }),
      );
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('OrchestratorClient timeouts', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  it('waits for a create that answers only once the VM is ready, longer than for other calls', async () => {
    const orch = await slowOrchestrator(600);
    server = orch.server;
    const client = new OrchestratorClient(orch.url, undefined, 200, 3000);
    const vm = await client.ensure('o1', { url: 'http://127.0.0.1:3000/callback', token: 'cb' });
    expect(vm.state).toBe('running');
    const err = await client.get('o1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OrchestratorCallError);
    // A timeout may mean the orchestrator is busy, not down.
    expect((err as OrchestratorCallError).unreachable).toBe(false);
  });
});
