export { ConfigError, env, parseEnv } from './config.js';
export { createLogger, type Logger, type LoggerOptions, REDACT_PATHS } from './logger.js';
export { runMain } from './main.js';
