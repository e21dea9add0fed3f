import { describe, expect, it } from 'vitest';
import { freeSlots, type HostInfo, parseHostInfo, rankHosts } from './hosts.js';

function host(id: string, o: Partial<HostInfo> = {}): HostInfo {
  return {
    host_id: id,
    url: `http://${id}.example.test:8080`,
    accepting: true,
    problem: null,
    subnet: '10.0.1.0/24',
    network: 'tap',
    driver: 'qemu',
    max_vms: 10,
    active_vms: 0,
    vms_mem_mib: 0,
    mem_total_mib: 16_384,
    mem_available_mib: 8192,
    vcpus: 8,
    started_at: '2026-01-01T00:00:00.000Z',
    heartbeat_at: '2026-01-01T00:00:05.000Z',
    ttl_ms: 15_000,
    instance: `i-${id}`,
    machine_id: `m-${id}`,
    ...o,
  };
}

describe('placement', () => {
  it('puts a new VM on the host with the most free VM slots', () => {
    const ranked = rankHosts([
      host('a', { max_vms: 10, active_vms: 9 }),
      host('b', { max_vms: 4, active_vms: 1 }),
      host('c', { max_vms: 20, active_vms: 18 }),
    ]);
    expect(ranked.map((h) => h.host_id)).toEqual(['b', 'c', 'a']);
  });

  it('breaks ties by free memory, then by host id', () => {
    const ranked = rankHosts([
      host('b', { max_vms: 2, active_vms: 1, mem_available_mib: 1000 }),
      host('a', { max_vms: 2, active_vms: 1, mem_available_mib: 1000 }),
      host('c', { max_vms: 2, active_vms: 1, mem_available_mib: 4000 }),
    ]);
    expect(ranked.map((h) => h.host_id)).toEqual(['c', 'a', 'b']);
  });

  it('never places on a host that cannot start VMs; full hosts come last', () => {
    const ranked = rankHosts([
      host('full', { max_vms: 1, active_vms: 1, mem_available_mib: 60_000 }),
      host('broken', { accepting: false, problem: 'no KVM', max_vms: 100 }),
      host('ok', { max_vms: 1, active_vms: 0, mem_available_mib: 10 }),
    ]);
    expect(ranked.map((h) => h.host_id)).toEqual(['ok', 'full']);
  });

  it('counts MAX_VMS=0 as unlimited', () => {
    expect(freeSlots({ max_vms: 0, active_vms: 500 })).toBe(Number.POSITIVE_INFINITY);
    expect(freeSlots({ max_vms: 3, active_vms: 5 })).toBe(0);
    expect(rankHosts([host('limited', { max_vms: 50 }), host('unlimited', { max_vms: 0 })])[0]?.host_id).toBe(
      'unlimited',
    );
  });
});

describe('parseHostInfo', () => {
  it('reads an announcement and keeps extra fields', () => {
    const parsed = parseHostInfo(JSON.stringify({ ...host('a'), socket_dir: '/run/x' }));
    expect(parsed).toMatchObject({ host_id: 'a', max_vms: 10 });
    expect((parsed as unknown as Record<string, unknown>)['socket_dir']).toBe('/run/x');
  });

  it('refuses what is not an announcement', () => {
    expect(parseHostInfo(null)).toBeNull();
    expect(parseHostInfo('not json')).toBeNull();
    expect(parseHostInfo(JSON.stringify({ ...host('a'), url: 'ftp://x' }))).toBeNull();
    expect(parseHostInfo(JSON.stringify({ ...host('a'), host_id: 'bad id' }))).toBeNull();
    expect(parseHostInfo(JSON.stringify({ ...host('a'), max_vms: -1 }))).toBeNull();
  });
});
