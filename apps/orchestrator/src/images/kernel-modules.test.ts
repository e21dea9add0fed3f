import { describe, expect, it } from 'vitest';
import { modinfoDepends, moduleLoadOrder } from './kernel-modules.js';

describe('kernel module resolution', () => {
  it('reads depends= from a .modinfo section', () => {
    const ko = Buffer.concat([
      Buffer.from('\x7fELF...'),
      Buffer.from('\0license=GPL\0depends=virtio,virtio_ring\0vermagic=6.1\0'),
    ]);
    expect(modinfoDepends(ko)).toEqual(['virtio', 'virtio_ring']);
    expect(modinfoDepends(Buffer.from('\0depends=\0'))).toEqual([]);
    expect(modinfoDepends(Buffer.from('no modinfo'))).toEqual([]);
  });

  it('orders modules after their dependencies, each once', () => {
    const deps: Record<string, string[]> = {
      virtio_net: ['net_failover', 'virtio', 'virtio_ring'],
      net_failover: ['failover'],
      virtio_blk: ['virtio', 'virtio_ring'],
      virtio: [],
      virtio_ring: [],
      failover: [],
    };
    const order = moduleLoadOrder(['virtio_blk', 'virtio_net'], (n) => deps[n] ?? []);
    expect(order).toEqual(['virtio', 'virtio_ring', 'virtio_blk', 'failover', 'net_failover', 'virtio_net']);
  });

  it('reports a dependency cycle', () => {
    expect(() => moduleLoadOrder(['a'], (n) => (n === 'a' ? ['b'] : ['a']))).toThrow(/cycle/);
  });
});
