export { freePort } from './ports.js';
export { type ChildService, spawnService } from './process.js';
export { type RedisServer, startRedis } from './redis.js';
export { waitFor } from './wait.js';
