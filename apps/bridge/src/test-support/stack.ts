import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createLogger } from '@moltage/core';
import { buildImage } from '@moltage/orchestrator';
import { SimulatorClient, type StartedSimulator, startSimulator } from '@moltage/simulator';
import { type ChildService, freePort, redisPing, spawnService, waitFor } from '@moltage/testkit';
import { Redis } from 'ioredis';
import type { BridgeTuning } from '../app.js';
import { type RunningBridge, runBridge } from '../main.js';
import { logSink } from './log-sink.js';

// The whole stack on one machine for fault injection: Redis with AOF (restartable on the same
// port and data dir), the WeChat simulator, the real orchestrator as its own process (killable),
// real QEMU VMs (TCG, user networking) of the `tiny-agent` image, whose busybox test agent speaks
// the webhook contract, and the bridge. Everything lives under one temporary directory and is
// stopped by PID in close(), also after a failure.

const exec = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const ORCHESTRATOR_MAIN = join(REPO, 'apps/orchestrator/dist/main.js');
export const TEST_IMAGE_DIR = process.env.MOLTAGE_TEST_IMAGE_DIR ?? '/var/tmp/moltage-test-images';

/** Builds the orchestrator (it runs from dist/) and the tiny-agent image (cached). */
export async function prepareStack(): Promise<void> {
  await exec('npx', ['tsc', '-b', 'apps/orchestrator'], { cwd: REPO, timeout: 240_000 });
  await buildImage({ kind: 'tiny-agent', imageDir: TEST_IMAGE_DIR });
}

/** A redis-server with AOF on, stopped and started again on the same port and data dir. */
export interface AofRedis {
  url: string;
  port: number;
  dir: string;
  /** The running server's pid (undefined while stopped). */
  pid(): number | undefined;
  /** Sends `signal` to the server and waits for it to exit; the data dir stays. */
  stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /**
   * Starts it again (same port, dir, AOF; `appendfsync` may change, as an operator's restart to
   * apply a new setting does) and waits until it has loaded the AOF.
   */
  start(opts?: { appendfsync?: 'always' | 'everysec' }): Promise<void>;
  /** Stops it and removes the data dir. */
  close(): Promise<void>;
}

export async function startAofRedis(opts: {
  dir: string;
  appendfsync: 'always' | 'everysec';
}): Promise<AofRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  let appendfsync = opts.appendfsync;
  const args = () => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    opts.dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    appendfsync,
    '--protected-mode',
    'yes',
  ];
  const running = () => proc !== undefined && proc.exitCode === null && proc.signalCode === null;
  const stop = async (signal: NodeJS.Signals) => {
    const p = proc;
    if (!p || !running()) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const start = async (o: { appendfsync?: 'always' | 'everysec' } = {}) => {
    if (running()) throw new Error('redis-server is already running');
    appendfsync = o.appendfsync ?? appendfsync;
    const p = spawn('redis-server', args(), { stdio: 'ignore' });
    proc = p;
    const failed = new Promise<never>((_, reject) => {
      p.once('error', (err) => reject(new Error(`cannot start redis-server: ${err.message}`)));
      p.once('exit', (code) => reject(new Error(`redis-server exited early with code ${code}`)));
    });
    failed.catch(() => {});
    await Promise.race([waitFor(() => redisPing(port), { timeoutMs: 20_000, what: 'redis-server' }), failed]);
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir: opts.dir,
    pid: () => (running() ? proc?.pid : undefined),
    stop,
    start,
    close: async () => {
      await stop('SIGTERM');
      await rm(opts.dir, { recursive: true, force: true });
    },
  };
}

/** The real orchestrator as a child process (apps/orchestrator/dist/main.js), restartable. */
export interface OrchestratorProcess {
  url: string;
  token: string;
  hostId: string;
  dataDir: string;
  socketDir: string;
  /** The running process (undefined after a kill until start()). */
  proc(): ChildService | undefined;
  /** Starts it (again, with the same port, Redis, dirs and host id) and waits until it listens. */
  start(): Promise<void>;
  /** SIGKILL (no clean-up at all) or SIGTERM (stops its VMs); waits for the exit. */
  stop(signal: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Everything every incarnation printed. */
  output(): string;
}

async function startOrchestratorProcess(opts: {
  redisUrl: string;
  dir: string;
  pubKeyPath: string;
  maxVms: number;
}): Promise<OrchestratorProcess> {
  const port = await freePort();
  const token = `faults-orch-token-${Math.random().toString(36).slice(2, 12)}`;
  const hostId = `faults-${process.pid}-${port}`;
  const dataDir = join(opts.dir, 'vms');
  const socketDir = join(opts.dir, 'sock');
  let proc: ChildService | undefined;
  let previous = '';
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_URL: opts.redisUrl,
    HOST_ID: hostId,
    LOG_LEVEL: 'info',
    ORCHESTRATOR_TOKEN: token,
    VM_DRIVER: 'qemu',
    // KVM cannot run guests here (DESIGN.md, Test rules); the probe is tested elsewhere.
    QEMU_ACCEL: 'tcg',
    VM_IMAGE: 'tiny-agent',
    VM_IMAGE_DIR: TEST_IMAGE_DIR,
    VM_NETWORK: 'user',
    VM_DATA_DIR: dataDir,
    SOCKET_DIR: socketDir,
    DEFAULT_MEM_MIB: '128',
    VM_DATA_DISK_MIB: '256',
    GATEWAY_SSH_PUBKEY_PATH: opts.pubKeyPath,
    VM_READY_TIMEOUT_MS: '90000',
    VM_STOP_TIMEOUT_MS: '5000',
    VM_IDLE_TIMEOUT_S: '0',
    MAX_VMS: String(opts.maxVms),
  };
  const handle: OrchestratorProcess = {
    url: `http://127.0.0.1:${port}`,
    token,
    hostId,
    dataDir,
    socketDir,
    proc: () => proc,
    async start() {
      if (proc) throw new Error('the orchestrator is already running');
      const p = spawnService(process.execPath, [ORCHESTRATOR_MAIN], { env });
      proc = p;
      try {
        await p.waitForOutput(/orchestrator listening/, 60_000);
      } catch (err) {
        await handle.stop('SIGKILL');
        throw err;
      }
    },
    async stop(signal) {
      const p = proc;
      if (!p) return;
      await p.stop(signal, signal === 'SIGTERM' ? 60_000 : 5000);
      previous += p.output();
      proc = undefined;
    },
    output: () => previous + (proc?.output() ?? ''),
  };
  await handle.start();
  return handle;
}

/** A VM record as the orchestrator keeps it in Redis (`vm:<openid>`), the parts the tests read. */
export interface StoredVmView {
  user_id: string;
  state: string;
  ip: string | null;
  agent_url: string | null;
  host_id?: string;
  runtime: { vmId: string; handle: { pid: number; runDir: string; controlSocket: string } | null };
}

/** What the stack holds on the machine and in Redis, to find leaks. */
export interface Resources {
  records: StoredVmView[];
  /** Live processes whose command line names this stack's socket dir (QEMU). */
  vmProcesses: Array<{ pid: number; args: string[] }>;
  /** Entries of SOCKET_DIR (one run dir per running VM: QMP socket, pid file, console log). */
  runDirs: string[];
  /** `ippool:<subnet>`: address → user. */
  ipPool: Record<string, string>;
  /** `vms:active:<host>`: users holding a VM slot. */
  active: string[];
  /** `lock:vm:*` keys. */
  locks: string[];
  /** VM_DATA_DIR: user → the files of that user's dir (data disk, config disk; kept across stops). */
  dataDirs: Record<string, string[]>;
}

export interface StackOptions {
  appendfsync?: 'always' | 'everysec';
  /** Extra bridge environment. */
  bridgeEnv?: Record<string, string>;
  tuning?: Partial<BridgeTuning>;
  maxVms?: number;
}

export interface Stack {
  dir: string;
  redis: AofRedis;
  /** A client of the stack's Redis (reconnects after a restart). */
  r: Redis;
  sim: StartedSimulator;
  client: SimulatorClient;
  orch: OrchestratorProcess;
  bridge: RunningBridge;
  /** Every log line of the bridge. */
  logs(): string;
  /** A following user whose welcome message arrived; returns the openid. */
  newUser(): Promise<string>;
  /** Texts the user received so far (customer-service messages). */
  texts(openid: string): Promise<string[]>;
  /** The user's VM record in Redis, or null. */
  vm(openid: string): Promise<StoredVmView | null>;
  resources(): Promise<Resources>;
  close(): Promise<void>;
}

async function cmdline(pid: number): Promise<string[] | undefined> {
  try {
    if (/\) Z /.test(await readFile(`/proc/${pid}/stat`, 'utf8'))) return undefined;
    const raw = await readFile(`/proc/${pid}/cmdline`);
    return raw.length === 0 ? undefined : raw.toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/** Live processes (not zombies) whose command line contains `needle`. */
export async function processesNaming(needle: string): Promise<Array<{ pid: number; args: string[] }>> {
  const out: Array<{ pid: number; args: string[] }> = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const args = await cmdline(Number(name));
    if (args?.some((a) => a.includes(needle))) out.push({ pid: Number(name), args });
  }
  return out;
}

/** Whether `pid` is still this stack's VM process (pids are reused). */
export async function isVmProcess(pid: number, socketDir: string): Promise<boolean> {
  return (await cmdline(pid))?.some((a) => a.includes(socketDir)) ?? false;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    const dir = await mkdtemp(join(tmpdir(), 'moltage-faults-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const redisDir = await mkdtemp(join(tmpdir(), 'moltage-faults-redis-'));
    const redis = await startAofRedis({ dir: redisDir, appendfsync: opts.appendfsync ?? 'everysec' });
    cleanups.push(() => redis.close());
    const r = new Redis(redis.url, { lazyConnect: true, retryStrategy: () => 100 });
    r.on('error', () => {});
    await r.connect();
    cleanups.push(async () => r.disconnect());

    // WeChat retries a push that failed (HTTP 5xx, refused) a few seconds later, 3 attempts.
    const sim = await startSimulator({ messageBudget: 100, pushRetryDelayMs: 3000 });
    cleanups.push(() => sim.close());

    const keyPath = join(dir, 'gateway_key');
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'moltage-faults', '-f', keyPath]);
    const orch = await startOrchestratorProcess({
      redisUrl: redis.url,
      dir,
      pubKeyPath: `${keyPath}.pub`,
      maxVms: opts.maxVms ?? 5,
    });
    // After the orchestrator (cleanups run in reverse): whatever VM a failed stop left, by pid,
    // only processes whose command line names this stack's socket dir.
    cleanups.push(async () => {
      for (const p of await processesNaming(`${orch.socketDir}/`)) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    });
    cleanups.push(() => orch.stop('SIGTERM'));

    const bridgePort = await freePort();
    const account = sim.account;
    const env: Record<string, string> = {
      PORT: String(bridgePort),
      HOST: '127.0.0.1',
      BRIDGE_BASE_URL: `http://127.0.0.1:${bridgePort}`,
      WECHAT_APPID: account.appId,
      WECHAT_APPSECRET: account.appSecret,
      WECHAT_TOKEN: account.token,
      WECHAT_API_BASE: sim.url,
      REDIS_URL: redis.url,
      ORCHESTRATOR_URL: orch.url,
      ORCHESTRATOR_TOKEN: orch.token,
      SSH_HOST: 'ssh.example.test',
      SSH_PORT: '2222',
      VM_READY_TIMEOUT_MS: '120000',
      AGENT_REPLY_TIMEOUT_MS: '20000',
      LOG_LEVEL: 'debug',
      BRIDGE_SHUTDOWN_GRACE_MS: '500',
      ...opts.bridgeEnv,
    };
    const { sink, text: logText } = logSink();
    const bridge = await runBridge({
      env,
      log: createLogger({ name: 'bridge', level: 'debug', destination: sink }),
      handleSignals: false,
      tuning: { vmPollMs: 200, sweepEveryMs: 250, ...opts.tuning },
    });
    cleanups.push(() => bridge.close());
    sim.sim.updateAccount({ bridgeUrl: `${bridge.url}/wechat` });

    const client = new SimulatorClient(sim.url);
    const stack: Stack = {
      dir,
      redis,
      r,
      sim,
      client,
      orch,
      bridge,
      logs: logText,
      async newUser() {
        const { user } = await client.createUser({ follow: true });
        await client.waitForInbox(user.openid, 1, { timeoutMs: 15_000 });
        return user.openid;
      },
      async texts(openid) {
        return (await client.inbox(openid)).map((e) => e.text ?? e.preview);
      },
      async vm(openid) {
        const raw = await r.get(`vm:${openid}`);
        return raw === null ? null : (JSON.parse(raw) as StoredVmView);
      },
      async resources() {
        const ids = await r.smembers('vms:all');
        const records = (await Promise.all(ids.map((id) => stack.vm(id)))).filter(
          (v): v is StoredVmView => v !== null,
        );
        const ipPool: Record<string, string> = {};
        for (const key of await r.keys('ippool:*')) Object.assign(ipPool, await r.hgetall(key));
        return {
          records,
          vmProcesses: await processesNaming(`${orch.socketDir}/`),
          runDirs: (await readdir(orch.socketDir).catch(() => [] as string[])).sort(),
          ipPool,
          active: (await r.smembers(`vms:active:${orch.hostId}`)).sort(),
          locks: await r.keys('lock:vm:*'),
          dataDirs: Object.fromEntries(
            await Promise.all(
              (await readdir(orch.dataDir).catch(() => [] as string[]))
                .filter((name) => !name.startsWith('.'))
                .map(async (name) => [name, (await readdir(join(orch.dataDir, name))).sort()] as const),
            ),
          ),
        };
      },
      close: cleanup,
    };
    return stack;
  } catch (err) {
    await cleanup();
    throw err;
  }
}
