export { freePort } from './ports.js';
export { type ChildService, spawnService } from './process.js';
export { seededRandom } from './random.js';
export { type RedisServer, redisPing, startRedis } from './redis.js';
export { waitFor } from './wait.js';
