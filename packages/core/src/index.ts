export { ConfigError, env, parseEnv } from './config.js';
export {
  callVmHost,
  freeSlots,
  HOST_ID_PATTERN,
  type HostCall,
  type HostCallFailure,
  HostDirectory,
  type HostInfo,
  hostKeys,
  parseHostInfo,
  rankHosts,
  type VmHostTarget,
} from './hosts.js';
export { longWaitDispatcher } from './http.js';
export { createLogger, deferredChild, type Logger, type LoggerOptions, REDACT_PATHS } from './logger.js';
export { runMain } from './main.js';
export {
  createRedis,
  describeRedis,
  isRedisUnavailable,
  parseSentinels,
  type RedisEndpoint,
  type RedisSettings,
  redisEnv,
} from './redis.js';
