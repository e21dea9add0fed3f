import { createServer } from 'node:net';
import type { VmNetwork } from '../domain/driver.js';
import { macForIp, type Subnet, userModeDnsIp } from '../domain/ip-pool.js';
import type { NetworkProvider } from '../domain/network.js';

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * QEMU user-mode networking: each guest lives in its own private net (VM_SUBNET) where the
 * host answers on GATEWAY_IP; ssh and agent ports are forwarded to 127.0.0.1. No root needed.
 */
export class UserNetwork implements NetworkProvider {
  readonly mode = 'user' as const;
  constructor(
    private readonly subnet: Subnet,
    private readonly gatewayIp: string,
    private readonly guestPorts: { ssh: number; agent: number },
  ) {}

  async init(): Promise<void> {}

  async attach(vm: { vmId: string; userId: string; ip: string }): Promise<VmNetwork> {
    const sshHostPort = await freeLoopbackPort();
    let agentHostPort = await freeLoopbackPort();
    while (agentHostPort === sshHostPort) agentHostPort = await freeLoopbackPort();
    return {
      mode: 'user',
      sshHostPort,
      agentHostPort,
      mac: macForIp(vm.ip),
      ip: vm.ip,
      gatewayIp: this.gatewayIp,
      prefixLen: this.subnet.prefixLen,
      netAddress: this.subnet.network,
      dnsIp: userModeDnsIp(this.subnet),
      sshGuestPort: this.guestPorts.ssh,
      agentGuestPort: this.guestPorts.agent,
    };
  }

  async detach(): Promise<void> {}

  endpoints(net: VmNetwork) {
    if (net.mode !== 'user') throw new Error('not a user-mode network');
    return {
      ssh: { host: '127.0.0.1', port: net.sshHostPort },
      agent: { host: '127.0.0.1', port: net.agentHostPort },
    };
  }

  hostIpForGuest(): string {
    return this.gatewayIp;
  }

  async orphans(): Promise<string[]> {
    return [];
  }

  async removeOrphan(): Promise<void> {}
}
