export {
  type CallOptions,
  FirecrackerClient,
  type FirecrackerClientOptions,
  type HttpMethod,
} from './api-client.js';
export type * from './api-types.js';
export {
  type ApiCall,
  BASE_BOOT_ARGS,
  type BootPlanInput,
  buildBootArgs,
  buildBootPlan,
  DRIVE_IDS,
  FIRECRACKER_LIMITS,
  type FirecrackerLogLevel,
  firecrackerInstanceId,
  type GuestPaths,
  IFACE_ID,
  validateSpec,
} from './boot-plan.js';
export { createFirecrackerDriver, type FirecrackerDriverOptions, RUN_FILES } from './driver.js';
export {
  FirecrackerApiError,
  FirecrackerError,
  type FirecrackerErrorCode,
  isFirecrackerError,
} from './errors.js';
export {
  DEFAULT_CHROOT_BASE_DIR,
  JAIL_API_SOCKET,
  type JailerOptions,
  type JailFile,
  type JailLayout,
  jailOfSocket,
  type PlanJailInput,
  planJail,
  removeJail,
  stageJail,
} from './jailer.js';
