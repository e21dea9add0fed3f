import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Supervisor } from '../supervisor.js';

/** Credentials of the demo Official Account, shared by the simulator and the bridge. */
export interface DemoSecrets {
  appId: string;
  appSecret: string;
  token: string;
  encodingAesKey: string;
  orchestratorToken: string;
  /** ADMIN_TOKEN of the bridge: the web console's login. */
  adminToken: string;
}

const here = dirname(fileURLToPath(import.meta.url));
/** bin/moltage.js, from apps/cli/dist/commands. */
export const MOLTAGE_BIN = resolve(here, '..', '..', '..', '..', 'bin', 'moltage.js');

function writeSecrets(file: string, secrets: DemoSecrets): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Loads the demo secrets from `dataDir`, creating them (mode 0600) on first use; a file from an
 * earlier release without `adminToken` gets one added.
 */
export function loadDemoSecrets(dataDir: string): DemoSecrets {
  const file = join(dataDir, 'demo-secrets.json');
  if (existsSync(file)) {
    const found = JSON.parse(readFileSync(file, 'utf8')) as Partial<DemoSecrets>;
    if (typeof found.adminToken === 'string' && found.adminToken.length >= 16) return found as DemoSecrets;
    const upgraded = { ...found, adminToken: randomBytes(24).toString('hex') } as DemoSecrets;
    writeSecrets(file, upgraded);
    return upgraded;
  }
  const secrets: DemoSecrets = {
    appId: `wx${randomBytes(8).toString('hex')}`,
    appSecret: randomBytes(16).toString('hex'),
    token: randomBytes(12).toString('hex'),
    // 43 characters: base64 of 32 bytes without the trailing '='.
    encodingAesKey: randomBytes(32).toString('base64').replace(/=+$/, ''),
    orchestratorToken: randomBytes(24).toString('hex'),
    adminToken: randomBytes(24).toString('hex'),
  };
  mkdirSync(dataDir, { recursive: true });
  writeSecrets(file, secrets);
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
  /** Builds (or reuses) the guest image before the orchestrator starts. */
  buildImage: (kind: 'agent' | 'tiny', imageDir: string) => Promise<void>;
  /** Creates the SSH gateway's host and upstream keys; returns the upstream public key's path. */
  ensureGatewayKeys: (hostKeyPath: string) => Promise<string>;
}

export interface StackInfo {
  rows: [string, string][];
  supervisor: Supervisor;
}

/** QMP/API sockets need short paths (108 bytes): keep them under /tmp, one folder per data dir. */
function socketDirFor(dataDir: string): string {
  return join(tmpdir(), `moltage-${createHash('sha256').update(dataDir).digest('hex').slice(0, 10)}`);
}

/**
 * Brings the stack up on this machine, each service a child process started only once the one
 * before it answers: Redis (its own, unless REDIS_URL is set), the orchestrator (user-mode
 * networking, no root needed; builds the guest image on first run), the SSH gateway, the bridge
 * and — without WECHAT_APPID — the WeChat simulator with its fake LLM.
 */
export async function bringUp(opts: UpOptions): Promise<StackInfo> {
  const dataDir = resolve(opts.dataDir);
  const logDir = join(dataDir, 'logs');
  const sup = new Supervisor(logDir);
  const rows: [string, string][] = [];
  const node = process.execPath;
  const env = opts.env;
  const demo = !env.WECHAT_APPID;
  const secrets = loadDemoSecrets(dataDir);
  const logLevel = env.LOG_LEVEL ?? 'info';
  const base: NodeJS.ProcessEnv = { PATH: env.PATH, HOME: env.HOME, LOG_LEVEL: logLevel };

  if (!demo) {
    const missing = ['WECHAT_APPSECRET', 'WECHAT_TOKEN', 'BRIDGE_BASE_URL'].filter((k) => !env[k]);
    if (missing.length) {
      throw new Error(
        `with WECHAT_APPID set, also set ${missing.join(', ')} (see README: Connecting a real account)`,
      );
    }
  }

  try {
    // Redis.
    let redisUrl = env.REDIS_URL;
    if (!redisUrl) {
      const port = await pickPort(6379);
      const redisDir = join(dataDir, 'redis');
      mkdirSync(redisDir, { recursive: true });
      opts.out(`starting redis on 127.0.0.1:${port} (data in ${redisDir})`);
      await sup.start({
        name: 'redis',
        command: 'redis-server',
        // Fsynced before every reply, as in deploy/: an acked push must survive a crash.
        args: [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--dir',
          redisDir,
          '--appendonly',
          'yes',
          '--appendfsync',
          'always',
        ],
        env: base,
        ready: { tcp: port },
      });
      redisUrl = `redis://127.0.0.1:${port}`;
    }
    rows.push(['Redis', redisUrl]);

    // Ports decided up front: the simulator pushes to the bridge, the bridge tells users the
    // gateway's port, the guests call the bridge back.
    const simPort = demo ? await pickPort(Number(env.SIM_PORT ?? 3100)) : 0;
    const simUrl = `http://127.0.0.1:${simPort}`;
    const bridgePort = await pickPort(Number(env.PORT ?? 3000));
    const orchPort = await pickPort(8080);
    const sshPort = await pickPort(2222);
    const gwMetricsPort = await pickPort(9222);
    const bridgeLocal = `http://127.0.0.1:${bridgePort}`;
    const bridgeBase = env.BRIDGE_BASE_URL ?? bridgeLocal;
    const orchUrl = `http://127.0.0.1:${orchPort}`;
    // Under QEMU's software emulation (no usable KVM) the agent image's first boot takes 4-7
    // minutes, more on a loaded machine, and OpenClaw's first turn after it 2-4 more.
    const readyTimeoutMs = env.VM_READY_TIMEOUT_MS ?? '900000';
    const agentReplyTimeoutMs = env.AGENT_REPLY_TIMEOUT_MS ?? '600000';

    // Guest image, then the orchestrator.
    const image = (env.VM_IMAGE ?? 'agent') as 'agent' | 'tiny';
    const imageDir = env.VM_IMAGE_DIR ?? '/var/lib/moltage/images';
    opts.out(`guest image "${image}" in ${imageDir} (built on first run; later runs reuse it)`);
    await opts.buildImage(image, imageDir);
    const hostKeyPath = join(dataDir, 'ssh-gateway', 'host_key');
    const gatewayPubKey = await opts.ensureGatewayKeys(hostKeyPath);
    const llm = env.LLM_BASE_URL
      ? { LLM_BASE_URL: env.LLM_BASE_URL, LLM_API_KEY: env.LLM_API_KEY, LLM_MODEL: env.LLM_MODEL }
      : demo
        ? { LLM_BASE_URL: `${simUrl}/v1`, LLM_API_KEY: 'fake-llm-key', LLM_MODEL: 'fake-model' }
        : {};
    if (!llm.LLM_BASE_URL) opts.out('warning: LLM_BASE_URL is not set; the agents have no model provider');
    opts.out(`starting the orchestrator on 127.0.0.1:${orchPort} (QEMU, user networking)`);
    await sup.start({
      name: 'orchestrator',
      command: node,
      args: [MOLTAGE_BIN, 'orchestrator'],
      env: {
        ...base,
        ...llm,
        PORT: String(orchPort),
        HOST: '127.0.0.1',
        REDIS_URL: redisUrl,
        ORCHESTRATOR_TOKEN: secrets.orchestratorToken,
        VM_DRIVER: env.VM_DRIVER ?? 'auto',
        VM_NETWORK: 'user',
        VM_IMAGE: image,
        VM_IMAGE_DIR: imageDir,
        VM_DATA_DIR: join(dataDir, 'vms'),
        SOCKET_DIR: socketDirFor(dataDir),
        VM_READY_TIMEOUT_MS: readyTimeoutMs,
        GATEWAY_SSH_PUBKEY_PATH: gatewayPubKey,
        ...(env.DEFAULT_MEM_MIB ? { DEFAULT_MEM_MIB: env.DEFAULT_MEM_MIB } : {}),
        ...(env.VM_IDLE_TIMEOUT_S ? { VM_IDLE_TIMEOUT_S: env.VM_IDLE_TIMEOUT_S } : {}),
        ...(env.MAX_VMS ? { MAX_VMS: env.MAX_VMS } : {}),
      },
      ready: { http: `${orchUrl}/health` },
      readyTimeoutMs: 120_000,
    });
    rows.push(['Orchestrator API', `${orchUrl}  (token in ${join(dataDir, 'demo-secrets.json')})`]);

    opts.out(`starting the SSH gateway on 127.0.0.1:${sshPort}`);
    await sup.start({
      name: 'ssh-gateway',
      command: node,
      args: [MOLTAGE_BIN, 'ssh-gateway'],
      env: {
        ...base,
        LISTEN_ADDR: `127.0.0.1:${sshPort}`,
        METRICS_ADDR: `127.0.0.1:${gwMetricsPort}`,
        REDIS_URL: redisUrl,
        ORCHESTRATOR_URL: orchUrl,
        ORCHESTRATOR_TOKEN: secrets.orchestratorToken,
        HOST_KEY_PATH: hostKeyPath,
      },
      ready: { tcp: sshPort },
    });

    const wechat = demo
      ? {
          WECHAT_APPID: secrets.appId,
          WECHAT_APPSECRET: secrets.appSecret,
          WECHAT_TOKEN: secrets.token,
          WECHAT_ENCODING_AES_KEY: secrets.encodingAesKey,
          WECHAT_API_BASE: simUrl,
        }
      : {
          WECHAT_APPID: env.WECHAT_APPID,
          WECHAT_APPSECRET: env.WECHAT_APPSECRET,
          WECHAT_TOKEN: env.WECHAT_TOKEN,
          ...(env.WECHAT_ENCODING_AES_KEY ? { WECHAT_ENCODING_AES_KEY: env.WECHAT_ENCODING_AES_KEY } : {}),
          ...(env.WECHAT_API_BASE ? { WECHAT_API_BASE: env.WECHAT_API_BASE } : {}),
        };
    opts.out(`starting the bridge on ${demo ? '127.0.0.1' : '0.0.0.0'}:${bridgePort}`);
    await sup.start({
      name: 'bridge',
      command: node,
      args: [MOLTAGE_BIN, 'bridge'],
      env: {
        ...base,
        ...wechat,
        PORT: String(bridgePort),
        HOST: demo ? '127.0.0.1' : '0.0.0.0',
        BRIDGE_BASE_URL: bridgeBase,
        REDIS_URL: redisUrl,
        ORCHESTRATOR_URL: orchUrl,
        ORCHESTRATOR_TOKEN: secrets.orchestratorToken,
        SSH_HOST: env.SSH_HOST ?? (demo ? '127.0.0.1' : hostname()),
        SSH_PORT: String(sshPort),
        VM_READY_TIMEOUT_MS: readyTimeoutMs,
        AGENT_REPLY_TIMEOUT_MS: agentReplyTimeoutMs,
        ADMIN_TOKEN: env.ADMIN_TOKEN ?? secrets.adminToken,
        SSH_GATEWAY_STATUS_URL: `http://127.0.0.1:${gwMetricsPort}`,
        ...(env.BIND_ALLOW_PRIVATE ? { BIND_ALLOW_PRIVATE: env.BIND_ALLOW_PRIVATE } : {}),
      },
      ready: { http: `${bridgeLocal}/health` },
    });
    rows.push(['Bridge', `${bridgeBase}  (WeChat pushes to ${bridgeBase}/wechat)`]);
    rows.push([
      'Console',
      `${bridgeBase}/admin  (token: ${env.ADMIN_TOKEN ? 'ADMIN_TOKEN from your environment' : `"adminToken" in ${join(dataDir, 'demo-secrets.json')}`})`,
    ]);

    if (demo) {
      opts.out(`starting the WeChat simulator and fake LLM on 127.0.0.1:${simPort}`);
      await sup.start({
        name: 'simulator',
        command: node,
        args: [MOLTAGE_BIN, 'sim', '--port', String(simPort)],
        env: {
          ...base,
          SIM_HOST: '127.0.0.1',
          SIM_APPID: secrets.appId,
          SIM_APPSECRET: secrets.appSecret,
          SIM_TOKEN: secrets.token,
          SIM_AES_KEY: secrets.encodingAesKey,
          SIM_MODE: 'safe',
          SIM_BRIDGE_URL: `${bridgeLocal}/wechat`,
        },
        ready: { http: `${simUrl}/` },
      });
      rows.push(['Chat page (simulated WeChat)', `${simUrl}/`]);
      rows.push(['Fake LLM (OpenAI-compatible)', `${simUrl}/v1`]);
    } else {
      rows.push(['WeChat server URL (服务器地址)', `${bridgeBase}/wechat`]);
      rows.push(['WeChat Token (令牌)', env.WECHAT_TOKEN ?? '']);
      rows.push([
        'Encryption (消息加解密方式)',
        env.WECHAT_ENCODING_AES_KEY
          ? 'safe mode 安全模式, EncodingAESKey as in WECHAT_ENCODING_AES_KEY'
          : 'plaintext 明文模式 (set WECHAT_ENCODING_AES_KEY for safe mode)',
      ]);
    }
    rows.push([
      'SSH into your VM',
      `ssh -p ${sshPort} <openid>@127.0.0.1  (send "ssh" in the chat for a password)`,
    ]);
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
