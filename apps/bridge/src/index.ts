export type { UserRecord } from './adapters/user-store.js';
export { type Bridge, type BridgeDeps, type BridgeTuning, buildApp, DEFAULT_TUNING } from './app.js';
export { type Config, configSchema, loadConfig } from './config.js';
export { type StoredSshPassword, verifySshPassword } from './domain/ssh-password.js';
export { BridgeError, type BridgeErrorCode } from './errors.js';
export { CONSUMER_GROUP, keys } from './keys.js';
export { type RunBridgeOptions, type RunningBridge, runBridge } from './main.js';
