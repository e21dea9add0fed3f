import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ServiceSpec, Supervisor } from '../supervisor.js';

/** Credentials of the demo Official Account, shared by the simulator and the bridge. */
export interface DemoSecrets {
  appId: string;
  appSecret: string;
  token: string;
  encodingAesKey: string;
  orchestratorToken: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** bin/moltage.js, from apps/cli/dist/commands. */
export const MOLTAGE_BIN = resolve(here, '..', '..', '..', '..', 'bin', 'moltage.js');

/** Loads the demo secrets from `dataDir`, creating them (mode 0600) on first use. */
export function loadDemoSecrets(dataDir: string): DemoSecrets {
  const file = join(dataDir, 'demo-secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as DemoSecrets;
  const secrets: DemoSecrets = {
    appId: `wx${randomBytes(8).toString('hex')}`,
    appSecret: randomBytes(16).toString('hex'),
    token: randomBytes(12).toString('hex'),
    // 43 characters: base64 of 32 bytes without the trailing '='.
    encodingAesKey: randomBytes(32).toString('base64').replace(/=+$/, ''),
    orchestratorToken: randomBytes(24).toString('hex'),
  };
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  return secrets;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

async function pickPort(preferred: number): Promise<number> {
  if (await portFree(preferred)) return preferred;
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export interface UpOptions {
  dataDir: string;
  env: NodeJS.ProcessEnv;
  out: (line: string) => void;
}

export interface StackInfo {
  rows: [string, string][];
  supervisor: Supervisor;
}

/**
 * Brings the stack up on this machine: Redis (its own, unless REDIS_URL is set) and, without
 * WECHAT_APPID, the WeChat simulator with its fake LLM. Returns once everything answers.
 */
export async function bringUp(opts: UpOptions): Promise<StackInfo> {
  const dataDir = resolve(opts.dataDir);
  const logDir = join(dataDir, 'logs');
  const sup = new Supervisor(logDir);
  const rows: [string, string][] = [];
  const node = process.execPath;
  const baseEnv = { ...opts.env };
  const demo = !opts.env.WECHAT_APPID;
  const secrets = loadDemoSecrets(dataDir);

  try {
    let redisUrl = opts.env.REDIS_URL;
    if (!redisUrl) {
      const port = await pickPort(6379);
      const redisDir = join(dataDir, 'redis');
      mkdirSync(redisDir, { recursive: true });
      opts.out(`starting redis on 127.0.0.1:${port} (data in ${redisDir})`);
      await sup.start({
        name: 'redis',
        command: 'redis-server',
        args: ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes'],
        env: baseEnv,
        ready: { tcp: port },
      });
      redisUrl = `redis://127.0.0.1:${port}`;
    }
    rows.push(['Redis', redisUrl]);

    if (demo) {
      const simPort = await pickPort(Number(opts.env.SIM_PORT ?? 3100));
      const bridgePort = Number(opts.env.PORT ?? 3000);
      const spec: ServiceSpec = {
        name: 'simulator',
        command: node,
        args: [MOLTAGE_BIN, 'sim', '--port', String(simPort)],
        env: {
          ...baseEnv,
          SIM_HOST: '127.0.0.1',
          SIM_APPID: secrets.appId,
          SIM_APPSECRET: secrets.appSecret,
          SIM_TOKEN: secrets.token,
          SIM_AES_KEY: secrets.encodingAesKey,
          SIM_MODE: 'safe',
          SIM_BRIDGE_URL: `http://127.0.0.1:${bridgePort}/wechat`,
        },
        ready: { http: `http://127.0.0.1:${simPort}/` },
      };
      opts.out(`starting the WeChat simulator and fake LLM on 127.0.0.1:${simPort}`);
      await sup.start(spec);
      rows.push(['Chat page (simulated WeChat)', `http://127.0.0.1:${simPort}/`]);
      rows.push(['Fake LLM (OpenAI-compatible)', `http://127.0.0.1:${simPort}/v1`]);
    }
    rows.push(['Logs', logDir]);
    return { rows, supervisor: sup };
  } catch (err) {
    await sup.stopAll();
    throw err;
  }
}

export function formatTable(rows: [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}
