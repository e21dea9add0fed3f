// Writes the VM user's ~/.openclaw/openclaw.json from the per-VM config (guest contract,
// images/README.md). Runs as root at every agent start (etc/moltage/run-agent): reads the
// root-only config file, then drops to the VM user before touching anything in the user's home,
// so a symlink planted there can never make root write elsewhere.
//
// The keys Moltage manages are merged into the existing file (Moltage's values win), so what
// the user or OpenClaw itself added survives a restart; DEFAULTS are only written when absent.
// A file that is not valid JSON is kept aside as openclaw.json.invalid-<time> and replaced.
//
// Usage: node openclaw-config.mjs --config /etc/moltage/config --home /home/user --uid 1000 --gid 1000
//        [--gateway-port 18789]
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const MAGIC = 'MOLTAGE_CONFIG_V1';
const GATEWAY_PORT = 18789;
/**
 * The plugin's webhook listens here, on loopback; etc/moltage/run-agent-gate publishes it on
 * agent_port once OpenClaw is ready.
 */
const WEBHOOK_PORT = 18780;
const PLUGIN_DIR = '/opt/moltage/openclaw-plugin';

function fail(message) {
  process.stderr.write(`moltage-agent: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (!key?.startsWith('--') || value === undefined) fail(`bad arguments: ${argv.join(' ')}`);
    out[key.slice(2)] = value;
  }
  for (const required of ['config', 'home', 'uid', 'gid']) {
    if (!out[required]) fail(`missing --${required}`);
  }
  return out;
}

/** The config disk's text: magic line, then key=value lines; the first occurrence of a key wins. */
export function parseGuestConfig(text) {
  const [magic, ...lines] = text.replace(/\0+$/, '').split('\n');
  if (magic !== MAGIC) throw new Error(`not a Moltage config (no ${MAGIC} line)`);
  const out = {};
  for (const line of lines) {
    const at = line.indexOf('=');
    if (at <= 0) continue;
    const key = line.slice(0, at);
    if (!Object.hasOwn(out, key)) out[key] = line.slice(at + 1);
  }
  return out;
}

function isHttpUrl(value) {
  try {
    const u = new URL(value);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/** The parts of openclaw.json Moltage owns, from the per-VM config. */
export function managedConfig(cfg, gatewayToken, gatewayPort = GATEWAY_PORT) {
  const agentToken = cfg.agent_token ?? '';
  if (agentToken.length < 8) throw new Error('agent_token is missing or shorter than 8 characters');

  const out = {
    gateway: {
      mode: 'local',
      port: gatewayPort,
      bind: 'loopback',
      auth: { mode: 'token', token: gatewayToken },
    },
    update: { checkOnStart: false },
    discovery: { mdns: { mode: 'off' } },
    session: { dmScope: 'per-channel-peer' },
    plugins: {
      allow: ['webhook-server'],
      load: { paths: [PLUGIN_DIR] },
      entries: {
        'webhook-server': {
          enabled: true,
          config: { port: WEBHOOK_PORT, host: '127.0.0.1', authToken: agentToken },
        },
      },
    },
    channels: { moltage: { config: {} } },
  };
  const channel = out.channels.moltage.config;
  if (cfg.callback_url) {
    if (!isHttpUrl(cfg.callback_url)) throw new Error('callback_url is not an http(s) URL');
    channel.callbackUrl = cfg.callback_url;
  }
  if (cfg.callback_token) channel.callbackToken = cfg.callback_token;

  const model = cfg.llm_model;
  if (cfg.llm_base_url && model) {
    if (!isHttpUrl(cfg.llm_base_url)) throw new Error('llm_base_url is not an http(s) URL');
    out.models = {
      mode: 'replace',
      catalogRefresh: { enabled: false },
      providers: {
        moltage: {
          baseUrl: cfg.llm_base_url,
          // OpenAI-compatible servers without auth still expect some bearer value.
          apiKey: cfg.llm_api_key || 'none',
          api: 'openai-completions',
          models: [
            {
              id: model,
              name: model,
              reasoning: false,
              input: ['text'],
              contextWindow: 128000,
              maxTokens: 4096,
            },
          ],
        },
      },
    };
    out.agents = { defaults: { model: { primary: `moltage/${model}` } } };
  }
  return out;
}

/**
 * Settings Moltage only proposes: written when absent, so the user can change them. The Control
 * UI is off: the gateway listens on the VM's loopback only, and preparing the UI's assets copies
 * ~54 MB into every user's home and competes with the first answer at boot.
 */
export const DEFAULTS = { gateway: { controlUi: { enabled: false } } };

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Objects merge key by key; everything else (arrays, strings…) in `patch` replaces. */
export function merge(base, patch) {
  const out = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    out[key] = isObject(value) && isObject(out[key]) ? merge(out[key], value) : value;
  }
  return out;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const uid = Number(args.uid);
  const gid = Number(args.gid);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) fail('--uid and --gid must be numbers');
  const gatewayPort = args['gateway-port'] ? Number(args['gateway-port']) : GATEWAY_PORT;
  if (!Number.isInteger(gatewayPort) || gatewayPort < 1 || gatewayPort > 65535) fail('bad --gateway-port');

  let cfg;
  try {
    cfg = parseGuestConfig(readFileSync(args.config, 'utf8'));
  } catch (err) {
    fail(`cannot read ${args.config}: ${err.message}`);
  }
  let managed;
  try {
    managed = managedConfig(cfg, randomBytes(24).toString('base64url'), gatewayPort);
  } catch (err) {
    fail(`bad per-VM config: ${err.message}`);
  }
  if (!managed.models) {
    process.stderr.write(
      'moltage-agent: no llm_base_url/llm_model in the per-VM config; the agent has no model\n',
    );
  }

  // From here on, act as the VM user.
  if (process.getuid() !== uid) {
    process.setgroups([gid]);
    process.setgid(gid);
    process.setuid(uid);
  }
  process.umask(0o077);

  const dir = join(args.home, '.openclaw');
  const file = join(dir, 'openclaw.json');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let current = {};
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code !== 'ENOENT') fail(`cannot read ${file}: ${err.message}`);
  }
  if (text !== undefined) {
    try {
      const parsed = JSON.parse(text);
      if (!isObject(parsed)) throw new Error('not a JSON object');
      current = parsed;
    } catch (err) {
      const aside = `${file}.invalid-${Date.now()}`;
      renameSync(file, aside);
      process.stderr.write(`moltage-agent: ${file} was not valid JSON (${err.message}); kept as ${aside}\n`);
    }
  }
  const next = merge(merge(DEFAULTS, current), managed);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
