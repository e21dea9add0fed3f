/**
 * The fake Firecracker must be as strict as the real one, or the driver tests prove nothing.
 * These tests talk to it directly through the driver's API client and check that it refuses
 * what Firecracker v1.16.1 refuses, in the way Firecracker does (400 + fault_message).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type ChildService, spawnService } from '@moltage/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FAKE_FIRECRACKER,
  type GuestFiles,
  makeGuestFiles,
  readRecord,
} from '../../../test-data/firecracker/fixture.js';
import { FirecrackerClient, type HttpMethod } from './api-client.js';
import { FirecrackerApiError } from './errors.js';

let files: GuestFiles;
let fake: ChildService | undefined;
let client: FirecrackerClient;
let socketPath: string;

async function startFake(env: Record<string, string> = {}): Promise<void> {
  fake = spawnService(FAKE_FIRECRACKER, ['--api-sock', socketPath, '--id', 'strict-test'], {
    env: { PATH: process.env.PATH, FAKE_FC_RECORD: files.record, ...env },
  });
  await fake.waitForOutput(/Listening on API socket/);
  client = new FirecrackerClient({ socketPath, timeoutMs: 3000 });
}

/** The error Firecracker answers `method path body` with. */
async function refusal(method: HttpMethod, path: string, body?: unknown): Promise<FirecrackerApiError> {
  try {
    await client.request(method, path, body);
  } catch (err) {
    expect(err).toBeInstanceOf(FirecrackerApiError);
    return err as FirecrackerApiError;
  }
  throw new Error(`${method} ${path} was accepted`);
}

const machine = { vcpu_count: 1, mem_size_mib: 128 };

async function configureBootable(): Promise<void> {
  await client.putMachineConfig(machine);
  await client.putBootSource({ kernel_image_path: files.kernel, boot_args: 'console=ttyS0 reboot=k' });
  await client.putDrive({
    drive_id: 'rootfs',
    path_on_host: files.rootfs,
    is_root_device: true,
    is_read_only: true,
  });
}

beforeEach(async () => {
  files = await makeGuestFiles();
  socketPath = join(files.dir, 'fc.socket');
});

afterEach(async () => {
  await fake?.stop('SIGKILL');
  fake = undefined;
  await files.cleanup();
});

describe('fake firecracker: request bodies', () => {
  beforeEach(() => startFake());

  it('reports a fresh instance as Not started', async () => {
    expect(await client.describeInstance()).toEqual({
      id: 'strict-test',
      state: 'Not started',
      vmm_version: '1.16.1',
      app_name: 'Firecracker',
    });
    expect(await client.getMachineConfig()).toMatchObject({ vcpu_count: 1, mem_size_mib: 128, smt: false });
  });

  it('refuses unknown fields with a 400 the client reports with path, status and fault_message', async () => {
    const err = await refusal('PUT', '/machine-config', { ...machine, cpus: 2 });
    expect(err.code).toBe('ORCH_FIRECRACKER_API');
    expect(err.status).toBe(400);
    expect(err.path).toBe('/machine-config');
    expect(err.faultMessage).toMatch(/unknown field `cpus`, expected one of `cpu_template`, `smt`/);
    expect(err.message).toContain('PUT /machine-config');
    expect(err.message).toContain(socketPath);
  });

  it('refuses unknown fields in nested objects too', async () => {
    const err = await refusal('PUT', '/drives/data', {
      drive_id: 'data',
      path_on_host: files.data,
      is_root_device: false,
      rate_limiter: { bandwidth: { size: 1, refill_time: 100 }, burst: 5 },
    });
    expect(err.faultMessage).toMatch(/unknown field `burst`/);
  });

  it('accepts unknown fields only where Firecracker does (metrics, token buckets)', async () => {
    await client.request('PUT', '/metrics', { metrics_path: join(files.dir, 'm.json'), extra: 1 });
    await client.request('PUT', '/drives/data', {
      drive_id: 'data',
      path_on_host: files.data,
      is_root_device: false,
      rate_limiter: { bandwidth: { size: 1, refill_time: 100, note: 'x' } },
    });
  });

  it('refuses missing required fields', async () => {
    expect((await refusal('PUT', '/boot-source', { boot_args: 'x' })).faultMessage).toMatch(
      /missing field `kernel_image_path`/,
    );
    expect(
      (await refusal('PUT', '/drives/data', { drive_id: 'data', path_on_host: files.data })).faultMessage,
    ).toMatch(/missing field `is_root_device`/);
    expect((await refusal('PUT', '/network-interfaces/eth0', { iface_id: 'eth0' })).faultMessage).toMatch(
      /missing field `host_dev_name`/,
    );
  });

  it('refuses wrong types, out-of-range values and unknown enum variants', async () => {
    expect((await refusal('PUT', '/machine-config', { ...machine, vcpu_count: '2' })).faultMessage).toMatch(
      /invalid type: string "2", expected u8/,
    );
    expect((await refusal('PUT', '/machine-config', { ...machine, vcpu_count: 300 })).faultMessage).toMatch(
      /invalid value: integer `300`, expected u8/,
    );
    expect((await refusal('PUT', '/machine-config', { ...machine, vcpu_count: 33 })).faultMessage).toMatch(
      /number of vCPUs must be greater than 0, less than 32/,
    );
    expect((await refusal('PUT', '/machine-config', { ...machine, smt: null })).faultMessage).toMatch(
      /invalid type: null, expected a boolean/,
    );
    expect((await refusal('PUT', '/actions', { action_type: 'Reboot' })).faultMessage).toMatch(
      /unknown variant `Reboot`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel`/,
    );
    expect(
      (
        await refusal('PUT', '/network-interfaces/eth0', {
          iface_id: 'eth0',
          host_dev_name: 'tap0',
          guest_mac: '06:00',
        })
      ).faultMessage,
    ).toMatch(/invalid value: string "06:00", expected MacAddr/);
  });

  it('refuses ids that differ between path and body, or that Firecracker cannot take', async () => {
    const drive = { drive_id: 'data', path_on_host: files.data, is_root_device: false };
    expect((await refusal('PUT', '/drives/other', drive)).faultMessage).toBe(
      'The id from the path does not match the id from the body!',
    );
    expect(
      (await refusal('PUT', '/network-interfaces/eth1', { iface_id: 'eth0', host_dev_name: 'tap0' }))
        .faultMessage,
    ).toBe('The id from the path [eth1] does not match the id from the body [eth0]!');
    expect((await refusal('PUT', '/drives/my-disk', { ...drive, drive_id: 'my-disk' })).faultMessage).toMatch(
      /can only contain alphanumeric characters and underscores/,
    );
  });

  it('refuses files Firecracker could not open', async () => {
    expect(
      (await refusal('PUT', '/boot-source', { kernel_image_path: join(files.dir, 'missing-vmlinux') }))
        .faultMessage,
    ).toMatch(/The kernel file cannot be opened/);
    expect(
      (
        await refusal('PUT', '/drives/data', {
          drive_id: 'data',
          path_on_host: join(files.dir, 'nope'),
          is_root_device: false,
        })
      ).faultMessage,
    ).toMatch(/Unable to create the virtio block device/);
  });

  it('refuses bodies where none belong, empty bodies and paths it does not know', async () => {
    expect((await refusal('PUT', '/machine-config')).faultMessage).toBe('Empty PUT request.');
    expect((await refusal('GET', '/', {})).faultMessage).toBe('GET request cannot have a body.');
    expect((await refusal('PUT', '/bogus', {})).faultMessage).toBe(
      'Invalid request method and/or path: PUT bogus.',
    );
    expect((await refusal('PUT', '/vsock', { guest_cid: 3, uds_path: '/v.sock' })).faultMessage).toMatch(
      /real Firecracker endpoint this fake does not model/,
    );
  });
});

describe('fake firecracker: ordering rules', () => {
  beforeEach(() => startFake());

  it('refuses InstanceStart without a boot source', async () => {
    await client.putMachineConfig(machine);
    expect((await refusal('PUT', '/actions', { action_type: 'InstanceStart' })).faultMessage).toBe(
      'Start microvm error: Cannot start microvm without kernel configuration.',
    );
  });

  it('refuses InstanceStart that would rely on default sizes or have no root filesystem', async () => {
    await client.putBootSource({ kernel_image_path: files.kernel });
    expect((await refusal('PUT', '/actions', { action_type: 'InstanceStart' })).faultMessage).toMatch(
      /without PUT \/machine-config/,
    );
    await client.putMachineConfig(machine);
    expect((await refusal('PUT', '/actions', { action_type: 'InstanceStart' })).faultMessage).toMatch(
      /without a root drive or an initrd/,
    );
  });

  it('refuses post-boot actions before boot', async () => {
    expect((await refusal('PUT', '/actions', { action_type: 'SendCtrlAltDel' })).faultMessage).toBe(
      'The requested operation is not supported before starting the microVM.',
    );
    expect((await refusal('PATCH', '/vm', { state: 'Paused' })).faultMessage).toMatch(
      /before starting the microVM/,
    );
  });

  it('refuses MMDS config for an interface that does not exist yet, and a second root drive', async () => {
    expect(
      (await refusal('PUT', '/mmds/config', { version: 'V2', network_interfaces: ['eth0'] })).faultMessage,
    ).toMatch(/does not correspond to any existing network interface/);
    await client.putDrive({
      drive_id: 'rootfs',
      path_on_host: files.rootfs,
      is_root_device: true,
      is_read_only: true,
    });
    expect(
      (
        await refusal('PUT', '/drives/data', {
          drive_id: 'data',
          path_on_host: files.data,
          is_root_device: true,
          is_read_only: false,
        })
      ).faultMessage,
    ).toBe('Drive config error: A root block device already exists!');
  });

  it('runs after a correct sequence, then refuses pre-boot calls, and pauses and resumes', async () => {
    await configureBootable();
    await client.action('InstanceStart');
    expect((await client.describeInstance()).state).toBe('Running');

    expect((await refusal('PUT', '/machine-config', machine)).faultMessage).toBe(
      'The requested operation is not supported after starting the microVM.',
    );
    expect((await refusal('PUT', '/actions', { action_type: 'InstanceStart' })).faultMessage).toMatch(
      /after starting the microVM/,
    );
    expect(
      (
        await refusal('PUT', '/drives/data', {
          drive_id: 'data',
          path_on_host: files.data,
          is_root_device: false,
        })
      ).faultMessage,
    ).toBe('PCI is not enabled');

    await client.patchVm({ state: 'Paused' });
    expect((await client.describeInstance()).state).toBe('Paused');
    await client.patchVm({ state: 'Resumed' });
    expect((await client.describeInstance()).state).toBe('Running');

    const record = await readRecord(files.record);
    expect(record.filter((r) => r.status >= 400).map((r) => `${r.method} ${r.path}`)).toEqual([
      'PUT /machine-config',
      'PUT /actions',
      'PUT /drives/data',
    ]);
  });

  it('powers off on Ctrl-Alt-Del and leaves its socket file behind, like Firecracker', async () => {
    await configureBootable();
    await client.action('InstanceStart');
    await client.action('SendCtrlAltDel');
    const code = await new Promise<number | null>((resolve) => fake?.proc.once('exit', (c) => resolve(c)));
    expect(code).toBe(0);
    expect(fake?.output()).toMatch(/reboot: Restarting system/);
    expect(existsSync(socketPath)).toBe(true);
  });
});

describe('fake firecracker: command line', () => {
  it('refuses to start on an existing socket path', async () => {
    await startFake();
    const second = spawnService(FAKE_FIRECRACKER, ['--api-sock', socketPath], {
      env: { PATH: process.env.PATH },
    });
    const code = await new Promise<number | null>((resolve) => second.proc.once('exit', (c) => resolve(c)));
    expect(code).toBe(1);
    expect(second.output()).toMatch(/Failed to open the API socket at: .*Check that it is not already used/);
  });

  it('refuses arguments Firecracker does not take and invalid instance ids', async () => {
    for (const args of [
      ['--api-sock', socketPath, '--vm-id', 'x'],
      ['--api-sock', socketPath, '--id', 'bad_id'],
      ['--api-sock', socketPath, '--api-sock', socketPath],
    ]) {
      const proc = spawnService(FAKE_FIRECRACKER, args, { env: { PATH: process.env.PATH } });
      const code = await new Promise<number | null>((resolve) => proc.proc.once('exit', (c) => resolve(c)));
      expect(code).not.toBe(0);
      expect(existsSync(socketPath)).toBe(false);
    }
  });
});
