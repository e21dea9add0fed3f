/**
 * The Firecracker driver against the fake Firecracker (Firecracker itself cannot run here):
 * real processes, real Unix sockets, the fake validating every request against the API
 * description derived from Firecracker's swagger file.
 */
import { spawn } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, open, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FAKE_FIRECRACKER,
  FAKE_JAILER,
  type GuestFiles,
  isAlive,
  makeGuestFiles,
  processesMentioning,
  readRecord,
  tapSpec,
} from '../../../test-data/firecracker/fixture.js';
import type { VmDriver, VmHandle } from '../../domain/driver.js';
import { createFirecrackerDriver, type FirecrackerDriverOptions, RUN_FILES } from './driver.js';
import { FirecrackerApiError, FirecrackerError } from './errors.js';

let files: GuestFiles;
const started: Array<{ driver: VmDriver; handle: VmHandle }> = [];

function makeDriver(
  extraEnv: Record<string, string> = {},
  opts: Partial<FirecrackerDriverOptions> = {},
): VmDriver {
  return createFirecrackerDriver({
    firecrackerBin: FAKE_FIRECRACKER,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FAKE_FC_RECORD: files.record, ...extraEnv },
    socketTimeoutMs: 5000,
    ...opts,
  });
}

async function startVm(driver: VmDriver, spec = tapSpec(files)): Promise<VmHandle> {
  const handle = await driver.start(spec);
  started.push({ driver, handle });
  return handle;
}

async function startFailure(driver: VmDriver, spec = tapSpec(files)): Promise<FirecrackerError> {
  try {
    const handle = await driver.start(spec);
    started.push({ driver, handle });
  } catch (err) {
    expect(err).toBeInstanceOf(FirecrackerError);
    return err as FirecrackerError;
  }
  throw new Error('start succeeded');
}

/** Nothing of a VM may remain after a failed start or a stop: no process, socket or pid file. */
async function expectNothingLeft(socketPath?: string): Promise<void> {
  expect(await processesMentioning(files.dir)).toEqual([]);
  if (socketPath) expect(existsSync(socketPath)).toBe(false);
  expect(existsSync(join(files.runDir, RUN_FILES.pid))).toBe(false);
}

beforeEach(async () => {
  files = await makeGuestFiles();
});

afterEach(async () => {
  for (const { driver, handle } of started.splice(0)) await driver.kill(handle);
  for (const pid of await processesMentioning(files.dir)) process.kill(pid, 'SIGKILL');
  await files.cleanup();
});

describe('firecracker driver: start', () => {
  it('configures the VM in the right order and reports it running', async () => {
    const driver = makeDriver();
    const handle = await startVm(driver);

    expect(handle).toMatchObject({ driver: 'firecracker', runDir: files.runDir });
    expect(isAlive(handle.pid)).toBe(true);
    expect(existsSync(handle.controlSocket)).toBe(true);
    expect(await driver.status(handle)).toBe('running');
    expect((await readFile(join(files.runDir, RUN_FILES.pid), 'utf8')).trim()).toBe(String(handle.pid));

    const record = await readRecord(files.record);
    expect(record.every((r) => r.status < 300)).toBe(true);
    expect(record.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path}`)).toEqual([
      'PUT /machine-config',
      'PUT /boot-source',
      'PUT /drives/rootfs',
      'PUT /drives/data',
      'PUT /drives/config',
      'PUT /network-interfaces/eth0',
      'PUT /actions',
    ]);
    const body = (path: string) => record.find((r) => r.path === path)?.body;
    expect(body('/machine-config')).toEqual({ vcpu_count: 2, mem_size_mib: 256, smt: false });
    expect(body('/drives/rootfs')).toMatchObject({
      path_on_host: files.rootfs,
      is_root_device: false,
      is_read_only: true,
    });
    expect(body('/drives/data')).toMatchObject({ path_on_host: files.data, is_read_only: false });
    expect(body('/drives/config')).toMatchObject({ path_on_host: files.config, is_read_only: true });
    expect(body('/network-interfaces/eth0')).toEqual({
      iface_id: 'eth0',
      host_dev_name: 'fc-tap0',
      guest_mac: '06:00:0a:00:01:02',
    });

    // The guest's serial console lands in the console log.
    const consoleText = await readFile(handle.consoleLog as string, 'utf8');
    expect(consoleText).toContain(
      'Command line: console=ttyS0 reboot=k panic=1 pci=off ip=10.0.1.2::10.0.1.1:255.255.255.0:vm-test-1:eth0:off',
    );
  });

  it('serves per-VM metadata over MMDS and sets up logger and metrics when asked', async () => {
    const driver = makeDriver(
      {},
      {
        logLevel: 'Info',
        metrics: true,
        metadata: (spec) => ({ hostname: spec.vmId, agent_token: 'secret-token' }),
      },
    );
    await startVm(driver);
    const record = await readRecord(files.record);
    const paths = record.filter((r) => r.method === 'PUT').map((r) => r.path);
    expect(paths.slice(0, 2)).toEqual(['/logger', '/metrics']);
    expect(paths).toContain('/mmds/config');
    expect(record.find((r) => r.path === '/mmds')?.body).toEqual({
      hostname: 'vm-test-1',
      agent_token: 'secret-token',
    });
    expect(existsSync(join(files.runDir, RUN_FILES.log))).toBe(true);
    expect(existsSync(join(files.runDir, RUN_FILES.metrics))).toBe(true);
  });

  it.each(['PUT /machine-config', 'PUT /drives/data', 'PUT /network-interfaces/eth0', 'PUT /actions'])(
    'leaves no process and no socket when %s fails',
    async (route) => {
      const err = await startFailure(makeDriver({ FAKE_FC_FAIL: route }));
      expect(err.code).toBe('ORCH_FIRECRACKER_START');
      expect(err.message).toContain(`${route}`);
      const cause = err.cause as FirecrackerApiError;
      expect(cause).toBeInstanceOf(FirecrackerApiError);
      expect(cause.code).toBe('ORCH_FIRECRACKER_API');
      expect(`${cause.method} ${cause.path}`).toBe(route);
      expect(cause.status).toBe(400);
      expect(cause.faultMessage).toMatch(/injected failure/);
      await expectNothingLeft(cause.socketPath);
    },
  );

  it('reports a Firecracker that dies mid-configuration with its exit, and removes the socket it left', async () => {
    const err = await startFailure(makeDriver({ FAKE_FC_CRASH_ON: 'PUT /boot-source' }));
    expect(err.code).toBe('ORCH_FIRECRACKER_START');
    expect(err.message).toMatch(/PUT \/boot-source failed/);
    expect(err.message).toMatch(/exited with code 1/);
    expect(err.message).toMatch(/crashing on PUT \/boot-source/);
    await expectNothingLeft((err.cause as FirecrackerApiError).socketPath);
  });

  it('reports a Firecracker that exits before opening its API socket, with its output', async () => {
    const err = await startFailure(makeDriver({ FAKE_FC_EXIT_BEFORE_SOCKET: '3' }));
    expect(err.code).toBe('ORCH_FIRECRACKER_SPAWN');
    expect(err.message).toMatch(/exited with code 3 before its API socket/);
    expect(err.message).toMatch(/exiting with 3 before binding the API socket/);
    await expectNothingLeft();
  });

  it('gives up on a socket that never appears and kills the process', async () => {
    const err = await startFailure(
      makeDriver({ FAKE_FC_SOCKET_DELAY_MS: '30000' }, { socketTimeoutMs: 300 }),
    );
    expect(err.code).toBe('ORCH_FIRECRACKER_SOCKET_TIMEOUT');
    await expectNothingLeft();
  });

  it('reports a missing binary', async () => {
    const driver = makeDriver({}, { firecrackerBin: join(files.dir, 'no-firecracker') });
    const err = await startFailure(driver);
    expect(err.code).toBe('ORCH_FIRECRACKER_SPAWN');
    expect(err.message).toMatch(/no-firecracker.*ENOENT/);
  });

  it('refuses a spec it cannot run before starting anything', async () => {
    const spec = tapSpec(files, {
      network: {
        mode: 'user',
        sshHostPort: 2222,
        agentHostPort: 8789,
        mac: '52:54:00:00:00:02',
        ip: '10.0.2.15',
        gatewayIp: '10.0.2.2',
        prefixLen: 24,
        netAddress: '10.0.2.0',
        dnsIp: '10.0.2.3',
        sshGuestPort: 22,
        agentGuestPort: 8789,
      },
    });
    const err = await startFailure(makeDriver(), spec);
    expect(err.code).toBe('ORCH_FIRECRACKER_BAD_SPEC');
    expect(await readRecord(files.record)).toEqual([]);
    await expectNothingLeft();
  });

  it('replaces the socket a crashed Firecracker left, but never one a live Firecracker answers on', async () => {
    const driver = makeDriver();
    const first = await startVm(driver);
    const err = await startFailure(driver);
    expect(err.code).toBe('ORCH_FIRECRACKER_SOCKET_IN_USE');
    expect(await driver.status(first)).toBe('running');

    process.kill(first.pid, 'SIGKILL'); // a crash: the socket file stays behind
    await expect.poll(() => isAlive(first.pid)).toBe(false);
    expect(existsSync(first.controlSocket)).toBe(true);
    expect(await driver.status(first)).toBe('stopped');

    const second = await startVm(driver);
    expect(second.controlSocket).toBe(first.controlSocket);
    expect(await driver.status(second)).toBe('running');
  });
});

describe('firecracker driver: stop, kill, status', () => {
  it('stops a VM by Ctrl-Alt-Del and cleans up', async () => {
    const driver = makeDriver();
    const handle = await startVm(driver);
    await driver.stop(handle, { timeoutMs: 5000 });

    expect(isAlive(handle.pid)).toBe(false);
    const record = await readRecord(files.record);
    expect(record.at(-1)).toMatchObject({
      method: 'PUT',
      path: '/actions',
      body: { action_type: 'SendCtrlAltDel' },
    });
    expect(await readFile(handle.consoleLog as string, 'utf8')).toContain('reboot: Restarting system');
    expect(await driver.status(handle)).toBe('stopped');
    await expectNothingLeft(handle.controlSocket);
  });

  it('kills a guest that ignores Ctrl-Alt-Del once the grace period is over', async () => {
    const driver = makeDriver({ FAKE_FC_CTRL_ALT_DEL: 'ignore' });
    const handle = await startVm(driver);
    await driver.stop(handle, { timeoutMs: 300 });

    expect(isAlive(handle.pid)).toBe(false);
    expect(await readFile(handle.consoleLog as string, 'utf8')).toContain('Ctrl-Alt-Del ignored');
    await expectNothingLeft(handle.controlSocket);
  });

  it('kills a VM at once and removes its socket', async () => {
    const driver = makeDriver();
    const handle = await startVm(driver);
    await driver.kill(handle);
    expect(isAlive(handle.pid)).toBe(false);
    await expectNothingLeft(handle.controlSocket);
    await driver.kill(handle); // a second kill is harmless
  });

  it('lets a new driver (after an orchestrator restart) find and stop a running VM from its handle', async () => {
    const handle = await startVm(makeDriver());
    const afterRestart = makeDriver();
    expect(await afterRestart.status(handle)).toBe('running');
    await afterRestart.stop(handle, { timeoutMs: 5000 });
    expect(isAlive(handle.pid)).toBe(false);
    await expectNothingLeft(handle.controlSocket);
  });

  it('reports a paused VM as paused', async () => {
    const driver = makeDriver();
    const handle = await startVm(driver);
    const { FirecrackerClient } = await import('./api-client.js');
    await new FirecrackerClient({ socketPath: handle.controlSocket }).patchVm({ state: 'Paused' });
    expect(await driver.status(handle)).toBe('paused');
  });

  it('never signals a process that merely reuses a dead VM pid', async () => {
    const bystander = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const pid = bystander.pid as number;
      const handle: VmHandle = {
        driver: 'firecracker',
        pid,
        controlSocket: join(files.dir, 'gone.socket'),
        runDir: files.runDir,
      };
      const driver = makeDriver();
      expect(await driver.status(handle)).toBe('stopped');
      await driver.kill(handle);
      await driver.stop(handle, { timeoutMs: 100 });
      expect(isAlive(pid)).toBe(true);
    } finally {
      bystander.kill('SIGKILL');
    }
  });
});

describe('firecracker driver: jailer', () => {
  it('runs Firecracker in a jail with hard-linked disks and removes the jail on stop', async () => {
    const chrootBaseDir = join(files.dir, 'jail');
    const driver = makeDriver(
      {},
      {
        jailer: {
          bin: FAKE_JAILER,
          uid: process.getuid?.() ?? 0,
          gid: process.getgid?.() ?? 0,
          chrootBaseDir,
        },
        logLevel: 'Warning',
      },
    );
    expect(await driver.availability()).toMatchObject({ details: { jailer: { version: '1.16.1' } } });
    const handle = await startVm(driver);

    const jailDir = join(await realpath(chrootBaseDir), 'fake-firecracker.mjs', 'vm-test-1');
    expect(handle.controlSocket).toBe(join(jailDir, 'root', 'api.socket'));
    expect(await driver.status(handle)).toBe('running');

    const record = await readRecord(files.record);
    expect(record.find((r) => r.path === '/boot-source')?.body).toMatchObject({
      kernel_image_path: '/kernel',
      initrd_path: '/initrd',
    });
    expect(record.find((r) => r.path === '/drives/data')?.body).toMatchObject({ path_on_host: '/data' });
    expect(record.find((r) => r.path === '/logger')?.body).toMatchObject({ log_path: '/firecracker.log' });
    const linked: Array<[string, string]> = [
      ['rootfs', files.rootfs],
      ['data', files.data],
    ];
    for (const [inJail, original] of linked) {
      const link = await stat(join(jailDir, 'root', inJail));
      expect(link.ino).toBe((await stat(original)).ino);
    }

    await driver.stop(handle, { timeoutMs: 5000 });
    expect(isAlive(handle.pid)).toBe(false);
    expect(existsSync(jailDir)).toBe(false);
    expect(await readFile(files.rootfs, 'utf8')).toBe('base rootfs stand-in');
    expect(await readFile(files.data, 'utf8')).toBe('user data disk stand-in');
    await expectNothingLeft();
  });

  it('removes the jail when the start fails', async () => {
    const chrootBaseDir = join(files.dir, 'jail');
    const driver = makeDriver(
      { FAKE_FC_FAIL: 'PUT /drives/rootfs' },
      { jailer: { bin: FAKE_JAILER, uid: 0, gid: 0, chrootBaseDir } },
    );
    const err = await startFailure(driver);
    expect(err.code).toBe('ORCH_FIRECRACKER_START');
    expect(existsSync(join(chrootBaseDir, 'fake-firecracker.mjs', 'vm-test-1'))).toBe(false);
    await expectNothingLeft();
  });
});

describe('firecracker driver: availability', () => {
  it('is unavailable without the binary, and says where it looked', async () => {
    const driver = makeDriver({}, { firecrackerBin: '/nonexistent/firecracker' });
    const result = await driver.availability();
    expect(result.ok).toBe(false);
    expect(result.reason).toBe(
      'Firecracker binary not found at /nonexistent/firecracker (install it or set FIRECRACKER_BIN)',
    );
  });

  it('is unavailable when the binary is not Firecracker', async () => {
    const result = await makeDriver({}, { firecrackerBin: '/bin/true' }).availability();
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(/\/bin\/true --version did not print "Firecracker v<version>"/);
  });

  it('is unavailable without /dev/kvm', async () => {
    const kvmDevice = join(files.dir, 'kvm');
    const result = await makeDriver({}, { kvmDevice }).availability();
    expect(result).toMatchObject({ ok: false, details: { version: '1.16.1' } });
    expect(result.reason).toBe(
      `${kvmDevice} does not exist: this host has no KVM (enable virtualization or load the kvm module)`,
    );
  });

  it('is unavailable when KVM cannot run a guest, as the injected probe says', async () => {
    const kvmDevice = join(files.dir, 'kvm-stand-in');
    await (await open(kvmDevice, 'w')).close();
    const result = await makeDriver(
      {},
      {
        kvmDevice,
        kvmProbe: async () => ({ ok: false, reason: 'KVM guest probe timed out (nested hypervisor)' }),
      },
    ).availability();
    expect(result).toMatchObject({ ok: false, reason: 'KVM guest probe timed out (nested hypervisor)' });
  });

  it('is available with a working binary and a read-write /dev/kvm, and caches the answer', async () => {
    const kvmUsable = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(
      () => true,
      () => false,
    );
    const driver = makeDriver();
    const result = await driver.availability();
    if (kvmUsable) {
      expect(result).toEqual({ ok: true, details: { version: '1.16.1', kvm: '/dev/kvm' } });
    } else {
      expect(result.ok).toBe(false);
      expect(result.reason).toMatch(/\/dev\/kvm/);
    }
    expect(await driver.availability()).toBe(result);
  });
});
