export { probeKvm } from './adapters/qemu/kvm-probe.js';
export { type AppDeps, buildApp } from './app.js';
export { type Config, configSchema } from './config.js';
export type { DriverName, VmDriver, VmHandle, VmNetwork, VmProcessState, VmSpec } from './domain/driver.js';
export type { VmRecord, VmState } from './domain/vm-record.js';
export * from './errors.js';
export {
  type BuildImageOptions,
  type BuiltImage,
  buildImage,
  type ImageProgress,
} from './images/build-image.js';
export { type ImageManifest, readManifest } from './images/manifest.js';
export { type RunningOrchestrator, type RunOrchestratorOptions, runOrchestrator } from './orchestrator.js';
