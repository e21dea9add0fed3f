import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configSchema as bridgeSchema } from '@moltage/bridge';
import { parseEnv } from '@moltage/core';
import { configSchema as orchestratorSchema } from '@moltage/orchestrator';
import { configSchema as gatewaySchema, upstreamKeyPath } from '@moltage/ssh-gateway';
import { ValidationSeverity, validate } from 'dockerfile-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import type { z } from 'zod';

/*
 * Static validation of the production deployment files. No Docker engine and no systemd (as
 * PID 1) run where the tests run, so the compose file, the Dockerfile and the units are checked
 * against the code they deploy instead of being started: what Compose would substitute, what
 * each service's own config schema accepts, which ports and paths each side uses. The health
 * probe and the image-build entry point are run for real.
 */

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const read = (rel: string) => readFileSync(join(repo, rel), 'utf8');

type Schema = z.ZodObject<z.ZodRawShape>;
const schemas: Record<string, Schema> = {
  bridge: bridgeSchema as unknown as Schema,
  orchestrator: orchestratorSchema as unknown as Schema,
  'ssh-gateway': gatewaySchema as unknown as Schema,
};
const SERVICES = Object.keys(schemas);
const keysOf = (s: Schema) => Object.keys(s.shape).sort();

const SECRET_NAME = /(^|_)(APPSECRET|SECRET|TOKEN|PASSWORD|PASS|API_KEY|AES_KEY)$/;

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolveRun) => {
    execFile(
      cmd,
      args,
      { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolveRun({ code, stdout, stderr });
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// The `moltage` CLI's commands, read from its source (the units and images run them).

function cliCommands(): Set<string> {
  const src = read('apps/cli/src/main.ts');
  const names = new Set<string>();
  for (const m of src.matchAll(/(?:serviceCommand\(|\.command\()\s*'([a-z][a-z-]*)'/g)) names.add(m[1]!);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Compose: YAML and variable substitution as Compose does it.

interface ComposeService {
  build?: { context: string; dockerfile: string; target: string };
  image?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  devices?: string[];
  cap_add?: string[];
  cap_drop?: string[];
  privileged?: boolean;
  sysctls?: Record<string, string>;
  network_mode?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  restart?: string;
  read_only?: boolean;
  security_opt?: string[];
  init?: boolean;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

class MissingVariableError extends Error {}

const VAR_RE = /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`, `${VAR:+r}`. */
function interpolate(text: string, env: Record<string, string | undefined>): string {
  return text.replace(VAR_RE, (whole, braced?: string, op?: string, arg?: string, bare?: string) => {
    if (whole === '$$') return '$';
    const name = (braced ?? bare)!;
    const value = env[name];
    const unset = value === undefined;
    const empty = unset || value === '';
    switch (op) {
      case undefined:
        return value ?? '';
      case ':-':
        return empty ? arg! : value!;
      case '-':
        return unset ? arg! : value!;
      case ':?':
      case '?':
        if (op === ':?' ? empty : unset)
          throw new MissingVariableError(`required variable ${name} is missing a value: ${arg}`);
        return value!;
      case ':+':
        return empty ? '' : arg!;
      default:
        return unset ? '' : arg!;
    }
  });
}

function interpolateTree<T>(node: T, env: Record<string, string | undefined>): T {
  if (typeof node === 'string') return interpolate(node, env) as T;
  if (Array.isArray(node)) return node.map((n) => interpolateTree(n, env)) as T;
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, env)])) as T;
  }
  return node;
}

interface VarUse {
  name: string;
  op: string | undefined;
  arg: string | undefined;
}
function varUses(node: unknown, out: VarUse[] = []): VarUse[] {
  if (typeof node === 'string') {
    for (const m of node.matchAll(VAR_RE)) {
      if (m[0] === '$$') continue;
      out.push({ name: (m[1] ?? m[4])!, op: m[2], arg: m[3] });
    }
  } else if (node && typeof node === 'object') {
    for (const n of Array.isArray(node) ? node : Object.values(node)) varUses(n, out);
  }
  return out;
}

function loadCompose(): { raw: ComposeFile; errors: string[] } {
  const doc = parseDocument(read('deploy/docker-compose.yml'), { uniqueKeys: true, prettyErrors: true });
  return {
    raw: doc.toJS({ maxAliasCount: 100 }) as ComposeFile,
    errors: [...doc.errors, ...doc.warnings].map((e) => e.message),
  };
}

// ---------------------------------------------------------------------------------------------
// .env.example: sections, assignments (set or commented), the comment block above each.

interface EnvLine {
  name: string;
  value: string;
  commented: boolean;
  section: string;
  comment: string;
  line: number;
}
function parseEnvExample(): EnvLine[] {
  const lines = read('deploy/.env.example').split('\n');
  const out: EnvLine[] = [];
  let section = '';
  let block: string[] = [];
  lines.forEach((text, i) => {
    if (/^# =+$/.test(text)) {
      const title = lines[i + 1];
      if (title && /^# [A-Z]/.test(title) && /^# =+$/.test(lines[i + 2] ?? '')) section = title.slice(2);
      block = [];
      return;
    }
    const m = /^(#)?([A-Z][A-Z0-9_]*)=(.*)$/.exec(text);
    if (m) {
      out.push({
        name: m[2]!,
        value: m[3]!,
        commented: m[1] === '#',
        section,
        comment: block.join('\n'),
        line: i + 1,
      });
      return;
    }
    if (text.startsWith('#')) block.push(text);
    else if (text.trim() === '') block = [];
  });
  return out;
}

/** Which services a section of .env.example documents. */
function sectionServices(section: string): string[] {
  if (section.startsWith('Shared')) return SERVICES;
  if (section.startsWith('Bridge')) return ['bridge'];
  if (section.startsWith('Orchestrator')) return ['orchestrator'];
  if (section.startsWith('SSH gateway')) return ['ssh-gateway'];
  if (section.startsWith('Docker compose only')) return [];
  throw new Error(`unknown .env.example section "${section}"`);
}

/** Values for the required variables, as an operator would fill them in. */
const FILLED: Record<string, string> = {
  ORCHESTRATOR_TOKEN: 'a3f1c0d2e4b5a6978877665544332211a3f1c0d2e4b5a6978877665544332211',
  REDIS_PASSWORD: '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0',
  WECHAT_APPID: 'wx0123456789abcdef',
  WECHAT_APPSECRET: '0123456789abcdef0123456789abcdef',
  WECHAT_TOKEN: 'moltageToken2025',
  BRIDGE_BASE_URL: 'https://wx.example.com',
  SSH_HOST: 'wx.example.com',
};

// ---------------------------------------------------------------------------------------------
// Dockerfile: instructions per stage.

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}
interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}
function parseDockerfile(text: string): { args: Record<string, string>; stages: Map<string, Stage> } {
  const instructions: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    if (!pending && (raw.trim() === '' || raw.trimStart().startsWith('#'))) return;
    if (pending && raw.trimStart().startsWith('#')) return;
    if (!pending) start = i + 1;
    const continued = raw.endsWith('\\');
    pending += `${continued ? raw.slice(0, -1) : raw} `;
    if (!continued) {
      const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(pending.trim());
      if (m) instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
      pending = '';
    }
  });
  const globalArgs: Record<string, string> = {};
  const stages = new Map<string, Stage>();
  let current: Stage | undefined;
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m?.[2]) throw new Error(`line ${ins.line}: every stage must be named (FROM … AS name)`);
      current = { name: m[2], base: m[1]!, instructions: [] };
      stages.set(current.name, current);
    } else if (!current && ins.keyword === 'ARG') {
      const [k, v] = ins.args.split('=');
      globalArgs[k!] = v ?? '';
    } else current?.instructions.push(ins);
  }
  return { args: globalArgs, stages };
}

/** A stage and the stages it is built FROM, innermost last. */
function lineage(stages: Map<string, Stage>, name: string): Stage[] {
  const chain: Stage[] = [];
  for (let s = stages.get(name); s; s = stages.get(s.base)) chain.unshift(s);
  return chain;
}

function finalOf(stages: Map<string, Stage>, target: string, keyword: string): Instruction | undefined {
  return lineage(stages, target)
    .flatMap((s) => s.instructions)
    .filter((i) => i.keyword === keyword)
    .at(-1);
}

// ---------------------------------------------------------------------------------------------
// systemd units: a small INI reader (repeated keys kept in order).

type Unit = Record<string, Record<string, string[]>>;
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section: Record<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      unit[header[1]!] ??= {};
      section = unit[header[1]!];
      continue;
    }
    const eq = line.indexOf('=');
    if (!section || eq < 1) throw new Error(`not a unit-file line: ${raw}`);
    const key = line.slice(0, eq).trim();
    const values = section[key] ?? [];
    values.push(line.slice(eq + 1).trim());
    section[key] = values;
  }
  return unit;
}
const one = (unit: Unit, section: string, key: string) => unit[section]?.[key]?.at(-1);

const UNITS = {
  bridge: 'moltage-bridge.service',
  orchestrator: 'moltage-orchestrator.service',
  'ssh-gateway': 'moltage-ssh-gateway.service',
} as const;
const unitPath = (service: keyof typeof UNITS) => join(repo, 'deploy/systemd', UNITS[service]);
const loadUnit = (service: keyof typeof UNITS) => parseUnit(readFileSync(unitPath(service), 'utf8'));

/** The environment files INSTALL.md writes (`cat > /etc/moltage/<service>.env <<EOF`). */
function installEnvFiles(): Record<string, Record<string, string>> {
  const text = read('deploy/INSTALL.md');
  const files: Record<string, Record<string, string>> = {};
  for (const m of text.matchAll(/cat > \/etc\/moltage\/([a-z-]+)\.env <<EOF\n([\s\S]*?)\n\s*EOF/g)) {
    const vars: Record<string, string> = {};
    for (const line of m[2]!.split('\n')) {
      const kv = /^\s*([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
      if (!kv) throw new Error(`INSTALL.md ${m[1]}.env: not an assignment: ${line}`);
      vars[kv[1]!] = kv[2]!;
    }
    files[m[1]!] = vars;
  }
  return files;
}

/** INSTALL.md's placeholders replaced as an operator would. */
function fillPlaceholders(vars: Record<string, string>): Record<string, string> {
  const shell: Record<string, string> = {
    ORCH_TOKEN: FILLED.ORCHESTRATOR_TOKEN!,
    REDIS_URL: `redis://:${FILLED.REDIS_PASSWORD}@127.0.0.1:6379/0`,
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) {
    let value = v.replace(/\$([A-Z_]+)/g, (_, name: string) => shell[name] ?? `$${name}`);
    if (/^<.*>$/.test(value)) value = k === 'WECHAT_ENCODING_AES_KEY' ? 'A'.repeat(43) : 'filled-in-value';
    value = value.replace(/<[^>]*>/g, 'filled');
    out[k] = value;
  }
  return out;
}

// =============================================================================================

describe('docker-compose.yml', () => {
  const { raw, errors } = loadCompose();
  const env = parseEnvExample();
  const documented = new Set(env.map((e) => e.name));
  const completeEnv = { ...FILLED };
  const compose = interpolateTree(raw, completeEnv);
  const svc = (name: string) => {
    const s = compose.services[name];
    if (!s) throw new Error(`no service ${name}`);
    return s;
  };

  it('parses as YAML without errors, warnings or duplicate keys, with the four services', () => {
    expect(errors).toEqual([]);
    expect(Object.keys(raw.services)).toEqual(
      expect.arrayContaining(['bridge', 'orchestrator', 'ssh-gateway', 'redis']),
    );
  });

  it('documents every variable it substitutes in .env.example', () => {
    const used = [...new Set(varUses(raw).map((u) => u.name))].sort();
    expect(used.length).toBeGreaterThan(20);
    expect(used.filter((n) => !documented.has(n))).toEqual([]);
  });

  it('marks every variable it requires as REQUIRED and empty in .env.example', () => {
    const required = [
      ...new Set(
        varUses(raw)
          .filter((u) => u.op === ':?')
          .map((u) => u.name),
      ),
    ].sort();
    expect(required).toEqual(Object.keys(FILLED).sort());
    for (const name of required) {
      const line = env.find((e) => e.name === name && !e.commented);
      expect(line, `${name} has an uncommented line`).toBeDefined();
      expect(line!.value, `${name} is left empty`).toBe('');
      expect(line!.comment, `${name} is marked REQUIRED`).toMatch(/REQUIRED/);
    }
  });

  it('refuses to start without each required secret, naming it', () => {
    for (const name of Object.keys(FILLED)) {
      const partial = { ...FILLED, [name]: '' };
      expect(() => interpolateTree(raw, partial), name).toThrow(
        new RegExp(`required variable ${name} is missing a value: set ${name} in deploy/\\.env`),
      );
    }
  });

  it('bakes in no secret: each comes from the variable of its name, required or empty by default', () => {
    let count = 0;
    for (const [name, service] of Object.entries(raw.services)) {
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (!SECRET_NAME.test(key)) continue;
        count++;
        const m = /^\$\{([A-Z_]+)(:\?[^}]+|:-)\}$/.exec(value);
        expect(m?.[1], `${name}.${key} = ${value}`).toBe(key);
      }
    }
    expect(count).toBeGreaterThanOrEqual(8);
    for (const use of varUses(raw)) {
      if (SECRET_NAME.test(use.name) && use.op?.includes('-')) expect(use.arg, use.name).toBe('');
    }
    expect(JSON.stringify(raw)).not.toMatch(/clawdbot|changeme|change-me|password123/i);
  });

  it('gives each service an environment its own config schema accepts, naming every schema variable', () => {
    for (const name of SERVICES) {
      const schema = schemas[name]!;
      const environment = svc(name).environment ?? {};
      expect(Object.keys(environment).sort(), `${name}: compose sets exactly the schema's variables`).toEqual(
        keysOf(schema),
      );
      expect(() => parseEnv(schema, environment), name).not.toThrow();
    }
  });

  it('still starts with every default of .env.example uncommented', () => {
    const all: Record<string, string> = {};
    for (const e of env) if (e.value !== '') all[e.name] = e.value;
    const withDefaults = interpolateTree(raw, { ...all, ...FILLED });
    for (const name of SERVICES) {
      expect(
        () => parseEnv(schemas[name]!, withDefaults.services[name]!.environment ?? {}),
        name,
      ).not.toThrow();
    }
  });

  it('builds every image from a Dockerfile target that exists, with the repository as context', () => {
    const { stages } = parseDockerfile(read('deploy/docker/Dockerfile'));
    const built = Object.entries(raw.services).filter(([, s]) => s.build);
    expect(built.map(([n]) => n)).toEqual(expect.arrayContaining(['bridge', 'orchestrator', 'ssh-gateway']));
    for (const [name, s] of built) {
      const context = resolve(here, s.build!.context);
      expect(context, name).toBe(repo);
      expect(existsSync(join(context, s.build!.dockerfile)), `${name}: ${s.build!.dockerfile}`).toBe(true);
      expect([...stages.keys()], name).toContain(s.build!.target);
    }
    for (const [name, s] of Object.entries(raw.services)) {
      if (!s.build) expect(s.image, `${name} pins its image`).toMatch(/^[a-z0-9./-]+:[\w.${}:-]+$/);
      expect(s.image ?? '', name).not.toMatch(/:latest$/);
    }
  });

  it('gives devices and capabilities to the orchestrator only (and the one-shot image build SYS_ADMIN)', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      expect(s.privileged ?? false, `${name} is not privileged`).toBe(false);
      expect(s.security_opt ?? [], `${name}: no-new-privileges`).toContain('no-new-privileges:true');
      if (name === 'orchestrator') continue;
      expect(s.devices, `${name} gets no device`).toBeUndefined();
      if (name === 'image-build') continue;
      expect(s.cap_add, `${name} adds no capability`).toBeUndefined();
      expect(s.security_opt?.filter((o) => /unconfined/.test(o)) ?? [], name).toEqual([]);
    }
    const orch = svc('orchestrator');
    expect(orch.cap_drop).toEqual(['ALL']);
    expect(orch.cap_add).toEqual(['NET_ADMIN']);
    expect(orch.devices?.map((d) => d.split(':')[0]).sort()).toEqual(['/dev/kvm', '/dev/net/tun']);
    for (const name of ['bridge', 'ssh-gateway', 'net']) expect(svc(name).cap_drop, name).toEqual(['ALL']);
    // The image build mounts /proc in its debootstrap chroot; it runs once, outside the services' namespace.
    const builder = svc('image-build');
    expect(builder.cap_add).toEqual(['SYS_ADMIN']);
    expect(builder.restart).toBe('no');
    expect(builder.network_mode).toBeUndefined();
    expect(builder.ports).toBeUndefined();
    const sysctls = Object.entries(compose.services).filter(([, s]) => s.sysctls);
    expect(sysctls.map(([n, s]) => [n, s.sysctls])).toEqual([['net', { 'net.ipv4.ip_forward': '1' }]]);
  });

  it('health-checks each service where it really listens', () => {
    const probe = (name: string) => {
      const test = svc(name).healthcheck?.test ?? [];
      expect(test.slice(0, 3), name).toEqual(['CMD', 'node', '/opt/moltage/deploy/docker/healthcheck.mjs']);
      return new URL(test[3]!);
    };
    expect(probe('bridge').port).toBe(svc('bridge').environment!.PORT);
    expect(probe('bridge').pathname).toBe('/health');
    expect(probe('orchestrator').port).toBe(svc('orchestrator').environment!.PORT);
    expect(probe('orchestrator').pathname).toBe('/health');
    const gw = probe('ssh-gateway');
    expect(`${gw.hostname}:${gw.port}`).toBe(svc('ssh-gateway').environment!.METRICS_ADDR);
    expect(gw.pathname).toBe('/health');
    expect(svc('redis').healthcheck?.test.join(' ')).toMatch(/redis-cli ping\)" = PONG/);
    expect(svc('redis').environment?.REDISCLI_AUTH).toBe(FILLED.REDIS_PASSWORD);
  });

  it('restarts the long-running services and runs image-build once', () => {
    for (const [name, s] of Object.entries(raw.services)) {
      expect(s.restart, name).toBe(name === 'image-build' ? 'no' : 'unless-stopped');
    }
    expect(svc('orchestrator').depends_on?.['image-build']?.condition).toBe('service_completed_successfully');
    // The orchestrator reads the gateway's upstream key at start: the gateway writes it first.
    expect(svc('orchestrator').depends_on?.['ssh-gateway']?.condition).toBe('service_healthy');
    for (const name of ['bridge', 'orchestrator', 'ssh-gateway'])
      expect(svc(name).depends_on?.redis?.condition, name).toBe('service_healthy');
  });

  it('keeps Redis AOF, images, VM data and the gateway keys on named volumes where the services look', () => {
    const mounts = (name: string) =>
      (svc(name).volumes ?? []).map((v) => {
        const [source, target, mode] = v.split(':');
        return { source: source!, target: target!, readOnly: mode === 'ro' };
      });
    const declared = Object.keys(raw.volumes);
    for (const name of Object.keys(compose.services))
      for (const m of mounts(name)) expect(declared, `${name}: ${m.source}`).toContain(m.source);
    expect(mounts('redis')).toContainEqual({ source: 'redis-data', target: '/data', readOnly: false });
    expect(svc('redis').healthcheck).toBeDefined();
    const redisCmd = raw.services.redis!.command!.join(' ');
    expect(redisCmd).toMatch(/--appendonly yes/);
    expect(redisCmd).toMatch(/--requirepass \$\{REDIS_PASSWORD:\?/);

    const within = (path: string, m: { target: string } | undefined) =>
      !!m && (path === m.target || path.startsWith(`${m.target}/`));
    const orchEnv = svc('orchestrator').environment!;
    const orch = mounts('orchestrator');
    const find = (list: ReturnType<typeof mounts>, source: string) => list.find((m) => m.source === source);
    expect(within(orchEnv.VM_IMAGE_DIR!, find(orch, 'images'))).toBe(true);
    expect(find(orch, 'images')?.readOnly).toBe(true);
    expect(within(orchEnv.VM_DATA_DIR!, find(orch, 'vm-data'))).toBe(true);
    expect(find(orch, 'vm-data')?.readOnly).toBe(false);
    const builder = mounts('image-build');
    expect(find(builder, 'images')?.target).toBe(find(orch, 'images')?.target);
    expect(svc('image-build').environment?.VM_IMAGE_DIR).toBe(orchEnv.VM_IMAGE_DIR);

    const hostKey = svc('ssh-gateway').environment!.HOST_KEY_PATH!;
    const gwKeys = find(mounts('ssh-gateway'), 'gateway-keys');
    expect(within(hostKey, gwKeys)).toBe(true);
    expect(gwKeys?.readOnly).toBe(false);
    expect(orchEnv.GATEWAY_SSH_PUBKEY_PATH).toBe(`${upstreamKeyPath(hostKey)}.pub`);
    expect(within(orchEnv.GATEWAY_SSH_PUBKEY_PATH!, find(orch, 'gateway-keys'))).toBe(true);
    expect(find(orch, 'gateway-keys')?.readOnly).toBe(true);
  });

  it('shares one network namespace between bridge, orchestrator and gateway, with consistent ports', () => {
    for (const name of ['bridge', 'orchestrator', 'ssh-gateway'])
      expect(svc(name).network_mode, name).toBe('service:net');
    const bridgeEnv = svc('bridge').environment!;
    const orchEnv = svc('orchestrator').environment!;
    const gwEnv = svc('ssh-gateway').environment!;
    // Guests may reach exactly the bridge's port on the VM bridge.
    expect(orchEnv.CALLBACK_PORT).toBe(bridgeEnv.PORT);
    for (const e of [bridgeEnv, gwEnv]) expect(new URL(e.ORCHESTRATOR_URL!).port).toBe(orchEnv.PORT);
    const published = (svc('net').ports ?? []).map((p) => {
      const parts = p.split(':');
      return { host: parts.slice(0, -1).join(':'), container: parts.at(-1)! };
    });
    expect(published).toContainEqual({ host: `127.0.0.1:${bridgeEnv.PORT}`, container: bridgeEnv.PORT! });
    expect(published).toContainEqual({ host: `127.0.0.1:${orchEnv.PORT}`, container: orchEnv.PORT! });
    // What users are told (`ssh -p SSH_PORT`) is the port published for the gateway's listener.
    expect(published).toContainEqual({
      host: bridgeEnv.SSH_PORT!,
      container: gwEnv.LISTEN_ADDR!.split(':')[1]!,
    });
    expect(svc('redis').ports).toBeUndefined();
  });
});

describe('.env.example', () => {
  const env = parseEnvExample();

  it('documents every variable of every service in that service’s section (or the shared one)', () => {
    for (const name of SERVICES) {
      const missing = keysOf(schemas[name]!).filter(
        (key) => !env.some((e) => e.name === key && sectionServices(e.section).includes(name)),
      );
      expect(missing, name).toEqual([]);
    }
  });

  it('documents each variable once per section, and nothing no service reads', () => {
    const seen = new Set<string>();
    for (const e of env) {
      const id = `${e.section}/${e.name}`;
      expect(seen.has(id), `${id} (line ${e.line})`).toBe(false);
      seen.add(id);
      const owners = sectionServices(e.section);
      if (owners.length > 0)
        expect(
          owners.some((s) => e.name in schemas[s]!.shape),
          `${e.name} (line ${e.line}) is read by a service of its section`,
        ).toBe(true);
    }
  });

  it('shows the true default of every optional variable', () => {
    for (const e of env.filter((x) => x.commented && x.value !== '')) {
      for (const service of sectionServices(e.section)) {
        const field = schemas[service]!.shape[e.name] as z.ZodType | undefined;
        if (!field) continue;
        expect(field.parse(e.value), `${e.name} (${service}, line ${e.line})`).toEqual(
          field.parse(undefined),
        );
      }
    }
  });

  it('marks every variable a schema requires as REQUIRED', () => {
    for (const name of SERVICES) {
      for (const key of keysOf(schemas[name]!)) {
        const field = schemas[name]!.shape[key] as z.ZodType;
        if (field.safeParse(undefined).success) continue;
        const line = env.find((e) => e.name === key && !e.commented);
        expect(line?.comment, `${name}.${key}`).toMatch(/REQUIRED/);
      }
    }
  });

  it('leaves every secret empty', () => {
    const secrets = env.filter((e) => SECRET_NAME.test(e.name));
    expect(secrets.map((e) => e.name)).toEqual(
      expect.arrayContaining(['ORCHESTRATOR_TOKEN', 'REDIS_PASSWORD', 'WECHAT_APPSECRET', 'LLM_API_KEY']),
    );
    for (const e of secrets) expect(e.value, `${e.name} (line ${e.line})`).toBe('');
  });
});

describe('deploy/docker/Dockerfile', () => {
  const text = read('deploy/docker/Dockerfile');
  const { args, stages } = parseDockerfile(text);
  const all = [...stages.values()].flatMap((s) => s.instructions.map((i) => ({ ...i, stage: s.name })));
  const runs = all.filter((i) => i.keyword === 'RUN');

  it('passes the dockerfile-utils linter with every check at error level', () => {
    const e = ValidationSeverity.ERROR;
    const diagnostics = validate(text, {
      deprecatedMaintainer: e,
      directiveCasing: e,
      emptyContinuationLine: e,
      instructionCasing: e,
      instructionCmdMultiple: e,
      instructionEntrypointMultiple: e,
      instructionHealthcheckMultiple: e,
      instructionJSONInSingleQuotes: e,
      instructionWorkdirRelative: e,
    });
    expect(diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  it('builds on a pinned node:20-bookworm-slim and on its own stages only', () => {
    expect(args.NODE_IMAGE).toBe('node:20-bookworm-slim');
    const nodeImageArg = '$' + '{NODE_IMAGE}';
    for (const s of stages.values()) expect([nodeImageArg, ...stages.keys()], s.name).toContain(s.base);
    expect([...stages.keys()]).toEqual(
      expect.arrayContaining([
        'build',
        'prod',
        'runtime',
        'bridge',
        'ssh-gateway',
        'orchestrator',
        'image-builder',
      ]),
    );
  });

  it('installs with npm ci after copying every workspace manifest, compiles with tsc -b, prunes dev deps', () => {
    const build = stages.get('build')!.instructions;
    const ci = build.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
    expect(ci).toBeGreaterThan(0);
    const copied = build
      .slice(0, ci)
      .filter((i) => i.keyword === 'COPY')
      .map((i) => i.args);
    const workspaces: string[] = JSON.parse(read('package.json')).workspaces;
    for (const ws of workspaces) expect(copied, ws).toContain(`${ws}/package.json ${ws}/`);
    expect(copied.some((c) => c.startsWith('package.json package-lock.json'))).toBe(true);
    expect(runs.some((r) => /\bnpm install\b/.test(r.args))).toBe(false);
    const tsc = build.find((i) => i.keyword === 'RUN' && /npx tsc -b /.test(i.args))!;
    for (const project of tsc.args.split('tsc -b ')[1]!.trim().split(/\s+/))
      expect(existsSync(join(repo, project, 'tsconfig.json')), project).toBe(true);
    expect(stages.get('prod')!.instructions.some((i) => /npm prune --omit=dev/.test(i.args))).toBe(true);
    const runtimeCopy = stages.get('runtime')!.instructions.filter((i) => i.keyword === 'COPY');
    expect(runtimeCopy.map((i) => i.args)).toContain('--from=prod /out/ ./');
  });

  it('keeps apt layers small: update and install together, no recommends, lists removed', () => {
    for (const r of runs.filter((x) => /apt-get (update|install)/.test(x.args))) {
      const where = `${r.stage}, line ${r.line}`;
      expect(r.args, where).toMatch(/apt-get update/);
      expect(r.args, where).toMatch(/apt-get install -y --no-install-recommends /);
      expect(r.args, where).toMatch(/rm -rf \/var\/lib\/apt\/lists\/\*/);
    }
  });

  it('gives the orchestrator and the image builder the Debian tools their code runs', () => {
    const installed = (target: string) =>
      lineage(stages, target)
        .flatMap((s) => s.instructions)
        .filter((i) => i.keyword === 'RUN' && /apt-get install/.test(i.args))
        .flatMap((i) => i.args.split('--no-install-recommends')[1]!.split('&&')[0]!.trim().split(/\s+/));
    // ip + bridge (iproute2), nft, mkfs.ext4 (e2fsprogs), qemu-system-x86_64, sysctl (procps).
    expect(installed('orchestrator')).toEqual(
      expect.arrayContaining([
        'qemu-system-x86',
        'qemu-utils',
        'e2fsprogs',
        'iproute2',
        'nftables',
        'procps',
      ]),
    );
    // apt-get download + dpkg-deb (base image), mkfs.ext4 -d, cpio, vmlinux extraction, debootstrap.
    expect(installed('image-builder')).toEqual(
      expect.arrayContaining(['e2fsprogs', 'cpio', 'lz4', 'zstd', 'xz-utils', 'debootstrap']),
    );
  });

  it('runs bridge and gateway as their own unprivileged users, orchestrator and builder as root', () => {
    for (const [target, user] of [
      ['bridge', 'moltage-bridge'],
      ['ssh-gateway', 'moltage-gateway'],
    ] as const) {
      expect(finalOf(stages, target, 'USER')?.args, target).toBe(user);
      expect(
        stages
          .get(target)!
          .instructions.some((i) => i.keyword === 'RUN' && i.args.includes(`useradd --system`)),
        target,
      ).toBe(true);
    }
    expect(finalOf(stages, 'orchestrator', 'USER')?.args).toBe('root');
    expect(finalOf(stages, 'image-builder', 'USER')?.args).toBe('root');
  });

  it('starts each service with a `moltage` command that exists, in exec form', () => {
    const commands = cliCommands();
    const entry = finalOf(stages, 'runtime', 'ENTRYPOINT')!;
    expect(JSON.parse(entry.args)).toEqual(['node', '/opt/moltage/bin/moltage.js']);
    expect(existsSync(join(repo, 'bin/moltage.js'))).toBe(true);
    for (const target of ['bridge', 'ssh-gateway', 'orchestrator']) {
      const cmd = JSON.parse(finalOf(stages, target, 'CMD')!.args) as string[];
      expect(cmd, target).toEqual([target]);
      expect(commands.has(target), `moltage ${target}`).toBe(true);
    }
    for (const i of all.filter((x) => ['CMD', 'ENTRYPOINT'].includes(x.keyword)))
      expect(() => JSON.parse(i.args), `${i.stage} line ${i.line}`).not.toThrow();
  });

  it('copies only files that exist, puts the health probe where compose runs it, keeps secrets out', () => {
    const workdir = finalOf(stages, 'runtime', 'WORKDIR')!.args;
    for (const i of all.filter((x) => ['COPY', 'ADD'].includes(x.keyword))) {
      expect(i.keyword, `${i.stage} line ${i.line}: COPY, not ADD`).toBe('COPY');
      if (i.args.startsWith('--from=')) continue;
      const parts = i.args.split(/\s+/);
      for (const src of parts.slice(0, -1))
        expect(existsSync(join(repo, src)), `${i.stage}: ${src}`).toBe(true);
    }
    const probe = stages
      .get('runtime')!
      .instructions.find((i) => i.args.startsWith('deploy/docker/healthcheck.mjs'));
    expect(posix.join(workdir, probe!.args.split(/\s+/)[1]!)).toBe(
      '/opt/moltage/deploy/docker/healthcheck.mjs',
    );
    for (const i of all.filter((x) => x.keyword === 'ENV' || x.keyword === 'ARG'))
      expect(i.args, `${i.stage} line ${i.line}`).not.toMatch(/(SECRET|TOKEN|PASSWORD|API_KEY)/);
    const ignore = read('deploy/docker/Dockerfile.dockerignore').split('\n');
    expect(ignore).toEqual(expect.arrayContaining(['**/node_modules', '**/dist', '**/.env']));
  });
});

describe('systemd units', () => {
  it('pass `systemd-analyze verify` without a single warning', async () => {
    for (const service of SERVICES as (keyof typeof UNITS)[]) {
      const r = await run('systemd-analyze', ['verify', unitPath(service)]);
      expect({ code: r.code, out: `${r.stdout}${r.stderr}`.trim() }, UNITS[service]).toEqual({
        code: 0,
        out: '',
      });
    }
  });

  it('keep their sandbox: `systemd-analyze security` exposure stays OK', async () => {
    const limits = { bridge: 2.0, 'ssh-gateway': 2.0, orchestrator: 4.0 };
    for (const service of SERVICES as (keyof typeof UNITS)[]) {
      const r = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', unitPath(service)]);
      const m = /Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout);
      expect(m, `${UNITS[service]}: ${r.stderr}`).not.toBeNull();
      expect(Number(m![1]), UNITS[service]).toBeLessThanOrEqual(limits[service]);
    }
  });

  it('run an existing `moltage` command with /etc/moltage/<service>.env and restart on failure', () => {
    const commands = cliCommands();
    for (const service of SERVICES as (keyof typeof UNITS)[]) {
      const unit = loadUnit(service);
      expect(Object.keys(unit).sort(), service).toEqual(['Install', 'Service', 'Unit']);
      expect(one(unit, 'Service', 'EnvironmentFile'), service).toBe(`/etc/moltage/${service}.env`);
      expect(one(unit, 'Service', 'ExecStart'), service).toBe(
        `/usr/bin/node /opt/moltage/bin/moltage.js ${service}`,
      );
      expect(one(unit, 'Service', 'WorkingDirectory'), service).toBe('/opt/moltage');
      expect(commands.has(service), `moltage ${service}`).toBe(true);
      expect(one(unit, 'Service', 'Restart'), service).toBe('on-failure');
      expect(one(unit, 'Service', 'NoNewPrivileges'), service).toBe('yes');
      expect(one(unit, 'Service', 'ProtectSystem'), service).toBe('strict');
      expect(one(unit, 'Service', 'PrivateTmp'), service).toBe('yes');
      expect(one(unit, 'Install', 'WantedBy'), service).toBe('multi-user.target');
    }
    expect(existsSync(join(repo, 'bin/moltage.js'))).toBe(true);
  });

  it('run every service as its own system user; only the orchestrator holds a capability', () => {
    const sysusers = read('deploy/systemd/moltage.sysusers');
    const declared = [...sysusers.matchAll(/^u\s+(\S+)/gm)].map((m) => m[1]);
    const users = new Set<string>();
    for (const service of SERVICES as (keyof typeof UNITS)[]) {
      const unit = loadUnit(service);
      const user = one(unit, 'Service', 'User')!;
      expect(declared, service).toContain(user);
      expect(user, service).not.toBe('root');
      users.add(user);
      if (service === 'orchestrator') continue;
      expect(one(unit, 'Service', 'CapabilityBoundingSet'), service).toBe('');
      expect(one(unit, 'Service', 'AmbientCapabilities'), service).toBe('');
      expect(one(unit, 'Service', 'PrivateDevices'), service).toBe('yes');
    }
    expect(users.size).toBe(3);
    const orch = loadUnit('orchestrator');
    expect(one(orch, 'Service', 'AmbientCapabilities')).toBe('CAP_NET_ADMIN');
    expect(one(orch, 'Service', 'CapabilityBoundingSet')).toBe('CAP_NET_ADMIN');
    expect(one(orch, 'Service', 'SupplementaryGroups')).toBe('kvm');
    expect(one(orch, 'Service', 'DevicePolicy')).toBe('closed');
    expect(orch.Service!.DeviceAllow).toEqual(['/dev/kvm rw', '/dev/net/tun rw']);
    expect(one(orch, 'Service', 'RestrictAddressFamilies')).toMatch(/AF_NETLINK/);
    // SIGTERM to the orchestrator alone: it powers the VMs down itself.
    expect(one(orch, 'Service', 'KillMode')).toBe('mixed');
  });

  it('match the environment files INSTALL.md writes, which the schemas accept', () => {
    const files = installEnvFiles();
    expect(Object.keys(files).sort()).toEqual([...SERVICES].sort());
    const cfg: Record<string, Record<string, string>> = {};
    for (const service of SERVICES) {
      const vars = fillPlaceholders(files[service]!);
      const unknown = Object.keys(vars).filter((k) => !(k in schemas[service]!.shape));
      expect(unknown, service).toEqual([]);
      expect(() => parseEnv(schemas[service]!, vars), service).not.toThrow();
      cfg[service] = vars;
    }
    const orch = loadUnit('orchestrator');
    const gw = loadUnit('ssh-gateway');
    const state = `/var/lib/${one(orch, 'Service', 'StateDirectory')}`;
    const runtime = `/run/${one(orch, 'Service', 'RuntimeDirectory')}`;
    expect(cfg.orchestrator!.VM_DATA_DIR!.startsWith(`${state}/`)).toBe(true);
    expect(cfg.orchestrator!.VM_IMAGE_DIR!.startsWith(`${state}/`)).toBe(true);
    expect(
      cfg.orchestrator!.SOCKET_DIR === runtime || cfg.orchestrator!.SOCKET_DIR!.startsWith(`${runtime}/`),
    ).toBe(true);
    const hostKey = cfg['ssh-gateway']!.HOST_KEY_PATH!;
    expect(dirname(hostKey)).toBe(`/etc/${one(gw, 'Service', 'ConfigurationDirectory')}`);
    expect(gw.Service!.ReadWritePaths).toContain(dirname(hostKey));
    expect(cfg.orchestrator!.GATEWAY_SSH_PUBKEY_PATH).toBe(`${upstreamKeyPath(hostKey)}.pub`);
    expect(cfg.orchestrator!.CALLBACK_PORT).toBe(cfg.bridge!.PORT);
    for (const s of ['bridge', 'ssh-gateway']) {
      expect(new URL(cfg[s]!.ORCHESTRATOR_URL!).port, s).toBe(cfg.orchestrator!.PORT);
      expect(cfg[s]!.ORCHESTRATOR_TOKEN, s).toBe(cfg.orchestrator!.ORCHESTRATOR_TOKEN);
    }
    expect(new URL(`http://${cfg['ssh-gateway']!.METRICS_ADDR}`).hostname).toBe('127.0.0.1');
  });
});

describe('deploy/docker/healthcheck.mjs', () => {
  const probe = join(here, 'docker/healthcheck.mjs');
  let server: Server;
  let base = '';
  const held: import('node:http').ServerResponse[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/ok') res.end('{"status":"ok"}');
      else if (req.url === '/down') {
        res.statusCode = 503;
        res.end('{"status":"error"}');
      } else held.push(res); // never answers
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const res of held) res.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('exits 0 for a 2xx answer', async () => {
    expect((await run('node', [probe, `${base}/ok`])).code).toBe(0);
  });

  it('exits 1 with the status for an unhealthy answer', async () => {
    const r = await run('node', [probe, `${base}/down`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('HTTP 503');
  });

  it('exits 1 when nothing listens or the answer does not come in time', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect((await run('node', [probe, `http://127.0.0.1:${port}/health`])).code).toBe(1);
    const r = await run('node', [probe, `${base}/hang`, '300']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/abort|timeout/i);
  });

  it('exits 2 on bad usage', async () => {
    expect((await run('node', [probe])).code).toBe(2);
    expect((await run('node', [probe, 'not-a-url'])).code).toBe(2);
  });
});

describe('deploy/docker/image-build.sh', () => {
  const script = join(here, 'docker/image-build.sh');

  it('is valid sh and runs a `moltage image build` the CLI has', async () => {
    expect((await run('sh', ['-n', script])).code).toBe(0);
    const commands = cliCommands();
    expect(commands.has('image') && commands.has('build')).toBe(true);
    expect(readFileSync(script, 'utf8')).toMatch(/moltage\.js image build \$kind_flag --image-dir "\$dir"/);
  });

  it('refuses an unknown VM_IMAGE before touching anything', async () => {
    const r = await run('sh', [script], { env: { PATH: process.env.PATH, VM_IMAGE: 'huge' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("VM_IMAGE must be agent or tiny, not 'huge'");
    expect(r.stdout).not.toContain('apt-get update');
  });
});
