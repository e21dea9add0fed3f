import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Logger } from '@moltage/core';
import type { VmDriver } from '../domain/driver.js';
import { probeKvm } from './qemu/kvm-probe.js';

export interface DriverSelection {
  driver?: VmDriver;
  /** Why no driver (or not the requested one) runs here. */
  problem?: string;
  firecracker: { binary: boolean; driverBuiltIn: boolean };
  kvm: { device: boolean; usable: boolean; reason: string };
}

async function executable(p: string): Promise<boolean> {
  try {
    await access(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * `VM_DRIVER=auto`: firecracker when its binary and a working KVM exist (and the driver is
 * built in), else qemu; `qemu`/`firecracker`: that one or none. Drivers are passed as
 * factories so a driver that is absent from this build is a clear reason, not a crash.
 */
export async function selectDriver(opts: {
  mode: 'auto' | 'qemu' | 'firecracker';
  firecrackerBin: string;
  qemuBin: string;
  probeKernelPath: string;
  probeCacheFile: string;
  factories: { qemu: () => VmDriver; firecracker?: () => VmDriver };
  logger: Logger;
}): Promise<DriverSelection> {
  const fcBinary = await executable(opts.firecrackerBin);
  const kvm = await probeKvm({
    qemuBin: opts.qemuBin,
    kernelPath: opts.probeKernelPath,
    cacheFile: opts.probeCacheFile,
  });
  const base = {
    firecracker: { binary: fcBinary, driverBuiltIn: !!opts.factories.firecracker },
    kvm: { device: kvm.device, usable: kvm.usable, reason: kvm.reason },
  };
  const tryFirecracker = async (): Promise<DriverSelection> => {
    if (!opts.factories.firecracker)
      return { ...base, problem: 'the firecracker driver is not part of this build' };
    if (!fcBinary) return { ...base, problem: `firecracker binary not found at ${opts.firecrackerBin}` };
    if (!kvm.usable) return { ...base, problem: `KVM is not usable: ${kvm.reason}` };
    const driver = opts.factories.firecracker();
    const a = await driver.availability();
    return a.ok ? { ...base, driver } : { ...base, problem: a.reason };
  };
  const tryQemu = async (): Promise<DriverSelection> => {
    const driver = opts.factories.qemu();
    const a = await driver.availability();
    return a.ok ? { ...base, driver } : { ...base, problem: a.reason };
  };
  if (opts.mode === 'firecracker') return tryFirecracker();
  if (opts.mode === 'qemu') return tryQemu();
  const fc = await tryFirecracker();
  if (fc.driver) return fc;
  const q = await tryQemu();
  if (q.driver) return q;
  return { ...base, problem: `firecracker: ${fc.problem}; qemu: ${q.problem}` };
}
