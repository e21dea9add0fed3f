export {
  ensureGatewayKeys,
  ensureKeyPair,
  type GatewayKeys,
  type KeyPair,
  upstreamKeyPath,
} from './adapters/key-files.js';
export { buildGateway, type Gateway, type GatewayDeps, type GatewaySettings } from './app.js';
export { type Config, configSchema, loadConfig } from './config.js';
export { type Route, resolveUpstream, type UpstreamTarget, type VmView } from './domain/route.js';
export { GatewayError, type GatewayErrorCode } from './errors.js';
export { type RunningSshGateway, type RunSshGatewayOptions, runSshGateway } from './gateway.js';
export { keys } from './keys.js';
