#!/usr/bin/env node
/**
 * A fake `firecracker` binary for tests on hosts without a usable KVM.
 *
 * From the driver's side it behaves like Firecracker v1.16.1: same command line (`--api-sock`,
 * `--id`, `--version`), the API on a Unix socket, every request checked against the API
 * description derived from Firecracker's swagger file and Rust sources
 * (firecracker-api.v1.16.1.json next to this file), the same ordering rules (pre-boot only /
 * post-boot only, InstanceStart needs a boot source, ...), errors as HTTP 400 with
 * `{"fault_message": "..."}`, instance state on `GET /`. Its "guest" powers off on
 * SendCtrlAltDel (the process exits 0, as Firecracker does when a `reboot=k` guest reboots), and
 * it leaves its socket file behind on exit, as Firecracker does.
 *
 * Test controls (environment):
 *   FAKE_FC_RECORD=<file>            append one JSON line per request: {method, path, body, status, fault_message}
 *   FAKE_FC_FAIL="PUT /drives/data"  answer these requests (comma separated, optional `=<status>`) with an error
 *   FAKE_FC_CRASH_ON="PUT /boot-source"  exit(1) when this request arrives, without answering
 *   FAKE_FC_CTRL_ALT_DEL=ignore      the guest ignores Ctrl-Alt-Del (default: poweroff)
 *   FAKE_FC_SHUTDOWN_DELAY_MS=<n>    how long the guest takes to power off (default 50)
 *   FAKE_FC_SOCKET_DELAY_MS=<n>      wait before binding the API socket (default 0)
 *   FAKE_FC_EXIT_BEFORE_SOCKET=<n>   exit with code n before binding the socket
 *   FAKE_FC_API_SCHEMA=<file>        the API description (default: next to this file)
 *   FAKE_FC_CHROOT=<dir>             set by the fake jailer: absolute paths resolve inside <dir>
 */
import {
  accessSync,
  appendFileSync,
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const api = JSON.parse(
  readFileSync(process.env.FAKE_FC_API_SCHEMA || join(here, 'firecracker-api.v1.16.1.json'), 'utf8'),
);
const VERSION = api.source.apiVersion;
const cli = api.cli.firecracker;

// ---------------------------------------------------------------- command line

function parseArgs(argv) {
  const sep = argv.indexOf('--');
  const own = sep === -1 ? argv : argv.slice(0, sep);
  if (own.includes('--help') || own.includes('-h')) return { help: true };
  if (own.includes('--version')) return { version: true };
  const values = {};
  const flags = new Set();
  for (let i = 0; i < own.length; i++) {
    const arg = own[i];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name === undefined || (!cli.valueArgs.includes(name) && !cli.flagArgs.includes(name))) {
      return {
        error: `Found argument '${name ?? arg}' which wasn't expected, or isn't valid in this context.`,
      };
    }
    if (name in values || flags.has(name))
      return { error: `The argument '${name}' was provided more than once.` };
    if (cli.flagArgs.includes(name)) {
      flags.add(name);
      continue;
    }
    const value = own[i + 1];
    if (value === undefined || value.startsWith('--')) {
      return { error: `The argument '${name}' requires a value, but none was supplied.` };
    }
    values[name] = value;
    i++;
  }
  return { values: { ...cli.defaults, ...values }, flags };
}

const parsed = parseArgs(process.argv.slice(2));
if (parsed.help) {
  process.stdout.write(`${cli.versionOutput}Usage: firecracker --api-sock <path> [--id <id>]\n`);
  process.exit(0);
}
if (parsed.version) {
  process.stdout.write(cli.versionOutput);
  process.exit(0);
}
if (parsed.error) {
  process.stderr.write(`Arguments parsing error: ${parsed.error}\n`);
  process.exit(cli.exitCodes.argParsing);
}
const instanceId = parsed.values.id;
if (!new RegExp(api.limits.instanceIdPattern).test(instanceId)) {
  process.stderr.write(`thread 'main' panicked: Invalid instance ID: ${JSON.stringify(instanceId)}\n`);
  process.exit(cli.exitCodes.genericError);
}

const chroot = process.env.FAKE_FC_CHROOT || '';
/** Where a path Firecracker was given lives on the host (inside the jail when run by the jailer). */
const onHost = (p) => (chroot && p.startsWith('/') ? join(chroot, p) : p);

const socketPath = onHost(parsed.values['api-sock']);
const recordPath = process.env.FAKE_FC_RECORD || '';
const injected = new Map(
  (process.env.FAKE_FC_FAIL || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const [route, status] = s.split('=');
      return [route.trim(), Number(status ?? 400) || 400];
    }),
);
const crashOn = (process.env.FAKE_FC_CRASH_ON || '').trim();
const ignoreCtrlAltDel = process.env.FAKE_FC_CTRL_ALT_DEL === 'ignore';
const shutdownDelayMs = Number(process.env.FAKE_FC_SHUTDOWN_DELAY_MS ?? 50);
const socketDelayMs = Number(process.env.FAKE_FC_SOCKET_DELAY_MS ?? 0);

// ---------------------------------------------------------------- schema validation (serde-like)

class Fault extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const errorText = (name, vars = {}) =>
  api.errors[name].replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
const fault = (name, vars, status = 400) => new Fault(status, errorText(name, vars));
const deserializeFault = (detail) => fault('Deserialize', { detail });

const RUST_INT_RANGE = {
  u8: [0, 255],
  u16: [0, 65535],
  u32: [0, 4294967295],
  u64: [0, Number.MAX_SAFE_INTEGER],
  usize: [0, Number.MAX_SAFE_INTEGER],
};

function describeValue(v) {
  if (v === null) return 'null';
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  if (typeof v === 'number') return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (Array.isArray(v)) return 'sequence';
  return 'map';
}

function expectedOf(schema, name) {
  if (schema.type === 'object') return `struct ${name}`;
  if (schema.type === 'string')
    return schema['x-rust'] && schema['x-rust'] !== 'String' ? schema['x-rust'] : 'a string';
  if (schema.type === 'boolean') return 'a boolean';
  if (schema.type === 'integer') return schema['x-rust'] ?? 'an integer';
  if (schema.type === 'array') return 'a sequence';
  return name;
}

function resolve(schema) {
  if (!schema.$ref) return [schema, undefined];
  const target = api.definitions[schema.$ref];
  if (!target) throw new Error(`API description has no definition ${schema.$ref}`);
  return [target, schema.$ref];
}

/** Throws a Fault with a serde-style message when `value` does not fit `schema`. */
function check(schemaIn, value, name) {
  const [schema, refName] = resolve(schemaIn);
  const label = refName ?? name;
  if (value === null) {
    if (schemaIn.nullable) return;
    throw deserializeFault(`invalid type: null, expected ${expectedOf(schema, label)}`);
  }
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) {
        throw deserializeFault(
          `invalid type: ${describeValue(value)}, expected ${expectedOf(schema, label)}`,
        );
      }
      const props = schema.properties ?? {};
      for (const [key, v] of Object.entries(value)) {
        if (!(key in props)) {
          if (schema.additionalProperties === false) {
            const known = Object.keys(props)
              .map((k) => `\`${k}\``)
              .join(', ');
            throw deserializeFault(`unknown field \`${key}\`, expected one of ${known}`);
          }
          continue;
        }
        check(props[key], v, key);
      }
      for (const key of schema.required ?? []) {
        if (!(key in value)) throw deserializeFault(`missing field \`${key}\``);
      }
      return;
    }
    case 'string': {
      if (typeof value !== 'string') {
        throw deserializeFault(
          `invalid type: ${describeValue(value)}, expected ${expectedOf(schema, label)}`,
        );
      }
      if (schema.enum) {
        const ok = schema['x-enumCaseInsensitive']
          ? schema.enum.some((e) => e.toLowerCase() === value.toLowerCase())
          : schema.enum.includes(value);
        if (!ok) {
          const variants = schema.enum.map((e) => `\`${e}\``).join(', ');
          throw deserializeFault(`unknown variant \`${value}\`, expected one of ${variants}`);
        }
      }
      if (schema['x-rust'] === 'Ipv4Addr') {
        const parts = value.split('.');
        const valid = parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
        if (!valid) throw deserializeFault('invalid IPv4 address syntax');
      } else if (schema.pattern && !new RegExp(schema.pattern).test(value)) {
        throw deserializeFault(
          `invalid value: ${describeValue(value)}, expected ${schema['x-rust'] ?? 'a string'}`,
        );
      }
      return;
    }
    case 'boolean':
      if (typeof value !== 'boolean') {
        throw deserializeFault(`invalid type: ${describeValue(value)}, expected a boolean`);
      }
      return;
    case 'integer': {
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        throw deserializeFault(
          `invalid type: ${describeValue(value)}, expected ${expectedOf(schema, label)}`,
        );
      }
      const range = RUST_INT_RANGE[schema['x-rust']];
      if (range && (value < range[0] || value > range[1])) {
        throw deserializeFault(`invalid value: integer \`${value}\`, expected ${schema['x-rust']}`);
      }
      return;
    }
    case 'array':
      if (!Array.isArray(value)) {
        throw deserializeFault(`invalid type: ${describeValue(value)}, expected a sequence`);
      }
      for (const item of value) check(schema.items, item, name);
      return;
    default:
      throw new Error(`API description: unsupported type ${schema.type} for ${label}`);
  }
}

// ---------------------------------------------------------------- the microVM model

const vm = {
  started: false,
  paused: false,
  machineConfig: { ...api.limits.defaultMachineConfig },
  machineConfigSet: false,
  bootSource: undefined,
  /** Insertion order, as Firecracker attaches them (root device first). */
  drives: new Map(),
  ifaces: new Map(),
  mmdsConfig: undefined,
  mmds: undefined,
  metricsPath: undefined,
  loggerPath: undefined,
};

function osError(err) {
  const codes = { ENOENT: 2, EACCES: 13, EROFS: 30, EISDIR: 21 };
  return `${err.message.split(',')[0]} (os error ${codes[err.code] ?? 5})`;
}

function mustOpen(path, write, onError) {
  try {
    accessSync(onHost(path), write ? constants.R_OK | constants.W_OK : constants.R_OK);
  } catch (err) {
    throw onError(err);
  }
}

function createFile(path) {
  closeSync(openSync(onHost(path), 'a'));
}

function phaseCheck(rule) {
  const verdict = vm.started ? rule.postBoot : rule.preBoot;
  if (verdict !== 'allowed') throw fault(verdict);
}

function guestConsole(line) {
  process.stdout.write(`${line}\n`);
}

function instanceStart() {
  if (!vm.bootSource) throw fault('MissingKernelConfig');
  if (!vm.machineConfigSet) throw new Fault(400, api.fakePolicy[0].faultMessage);
  const hasRoot = [...vm.drives.values()].some((d) => d.is_root_device) || Boolean(vm.bootSource.initrd_path);
  if (!hasRoot) throw new Fault(400, api.fakePolicy[1].faultMessage);
  vm.started = true;
  guestConsole(
    `[    0.000000] Linux version 6.1.0-fake (fake firecracker ${VERSION}, instance ${instanceId})`,
  );
  guestConsole(`[    0.000000] Command line: ${vm.bootSource.boot_args ?? ''}`);
  for (const [id, d] of vm.drives) {
    guestConsole(`[    0.100000] virtio_blk ${id}: ${d.path_on_host} ${d.is_read_only ? 'ro' : 'rw'}`);
  }
}

function sendCtrlAltDel() {
  if (ignoreCtrlAltDel) {
    guestConsole('[   10.000000] fake guest: Ctrl-Alt-Del ignored');
    return;
  }
  setTimeout(() => {
    guestConsole('[   10.000000] reboot: Restarting system');
    process.exit(0);
  }, shutdownDelayMs);
}

const handlers = {
  'GET /': () => ({
    status: 200,
    body: {
      id: instanceId,
      state: vm.started ? (vm.paused ? 'Paused' : 'Running') : 'Not started',
      vmm_version: VERSION,
      app_name: 'Firecracker',
    },
  }),
  'GET /machine-config': () => ({ status: 200, body: vm.machineConfig }),
  'GET /version': () => ({ status: 200, body: { firecracker_version: VERSION } }),
  'PUT /actions': (body, endpoint) => {
    phaseCheck(endpoint.actions[body.action_type]);
    if (body.action_type === 'InstanceStart') instanceStart();
    else if (body.action_type === 'SendCtrlAltDel') sendCtrlAltDel();
    else if (body.action_type === 'FlushMetrics' && vm.metricsPath) {
      appendFileSync(onHost(vm.metricsPath), `${JSON.stringify({ utc_timestamp_ms: Date.now() })}\n`);
    }
  },
  'PUT /boot-source': (body) => {
    mustOpen(body.kernel_image_path, false, (e) => fault('InvalidKernelPath', { os: osError(e) }));
    if (body.initrd_path) {
      mustOpen(body.initrd_path, false, (e) => fault('InvalidInitrdPath', { os: osError(e) }));
    }
    vm.bootSource = body;
  },
  'PUT /drives/{drive_id}': (body) => {
    const virtio = typeof body.path_on_host === 'string' && body.socket == null;
    if (!virtio) throw fault('InvalidBlockConfig');
    if (body.is_root_device) {
      for (const [id, d] of vm.drives) {
        if (d.is_root_device && id !== body.drive_id) throw fault('RootBlockDeviceAlreadyAdded');
      }
    }
    mustOpen(body.path_on_host, !body.is_read_only, (e) =>
      fault('BackingFile', { os: osError(e), path: body.path_on_host }),
    );
    vm.drives.delete(body.drive_id);
    if (body.is_root_device) vm.drives = new Map([[body.drive_id, body], ...vm.drives]);
    else vm.drives.set(body.drive_id, body);
  },
  'PUT /network-interfaces/{iface_id}': (body) => {
    const name = body.host_dev_name;
    if (name.length === 0 || Buffer.byteLength(name) > api.limits.tapNameMaxBytes)
      throw fault('InvalidIfname');
    if (body.guest_mac) {
      for (const [id, n] of vm.ifaces) {
        if (id !== body.iface_id && n.guest_mac?.toLowerCase() === body.guest_mac.toLowerCase()) {
          throw fault('GuestMacAddressInUse', { mac: body.guest_mac.toLowerCase() });
        }
      }
    }
    if (body.mtu != null && (body.mtu < 68 || body.mtu > 65535)) {
      throw new Fault(
        400,
        `Network config error: Could not create the network device: invalid MTU ${body.mtu}`,
      );
    }
    vm.ifaces.set(body.iface_id, body);
  },
  'PUT /logger': (body) => {
    if (body.log_path) createFile(body.log_path);
    vm.loggerPath = body.log_path ?? vm.loggerPath;
  },
  'PUT /machine-config': (body) => {
    const smt = body.smt ?? false;
    const vcpus = body.vcpu_count;
    if (vcpus < 1 || vcpus > api.limits.vcpuMax || (smt && vcpus > 1 && vcpus % 2 !== 0)) {
      throw fault('InvalidVcpuCount');
    }
    const hugePages = body.huge_pages ?? 'None';
    if (body.mem_size_mib === 0 || (hugePages === '2M' && body.mem_size_mib % 2 !== 0)) {
      throw fault('InvalidMemorySize');
    }
    vm.machineConfig = {
      vcpu_count: vcpus,
      mem_size_mib: body.mem_size_mib,
      smt,
      track_dirty_pages: body.track_dirty_pages ?? false,
      huge_pages: hugePages,
      ...(body.cpu_template && body.cpu_template !== 'None' ? { cpu_template: body.cpu_template } : {}),
    };
    vm.machineConfigSet = true;
  },
  'PUT /metrics': (body) => {
    if (vm.metricsPath) throw fault('MetricsAlreadyInitialized');
    createFile(body.metrics_path);
    vm.metricsPath = body.metrics_path;
  },
  'PUT /mmds': (body) => {
    if (Buffer.byteLength(JSON.stringify(body)) > api.limits.mmdsStoreBytes)
      throw fault('MmdsLimitExceeded', {}, 413);
    if (vm.started && vm.mmds === undefined) throw fault('MmdsNotInitialized');
    vm.mmds = body;
  },
  'PUT /mmds/config': (body) => {
    if (body.network_interfaces.length === 0) throw fault('MmdsEmptyNetworkIfaceList');
    if (body.network_interfaces.some((id) => !vm.ifaces.has(id)))
      throw fault('MmdsInvalidNetworkInterfaceId');
    const ipSchema = api.definitions.MmdsConfig.properties.ipv4_address;
    if (body.ipv4_address != null && !new RegExp(ipSchema.pattern).test(body.ipv4_address)) {
      throw fault('MmdsInvalidIpv4Addr');
    }
    vm.mmdsConfig = body;
    vm.mmds = vm.mmds ?? {};
  },
  'PATCH /vm': (body) => {
    vm.paused = body.state === 'Paused';
  },
};

// ---------------------------------------------------------------- routing (as parsed_request.rs)

const unmodelled = new Set(api.unmodelled.paths);
const PATH_PARAMS = { drives: '{drive_id}', 'network-interfaces': '{iface_id}', pmem: '{id}' };

function route(method, rawPath) {
  const tokens = rawPath.replace(/^\/+/, '').split('/').filter(Boolean);
  const first = tokens[0] ?? '';
  for (const endpoint of api.endpoints) {
    if (endpoint.method !== method) continue;
    const template = endpoint.path.replace(/^\/+/, '').split('/').filter(Boolean);
    if ((template[0] ?? '') !== first) continue;
    if (endpoint.pathParam) {
      if (tokens.length > 2) continue;
      return { endpoint, id: tokens[1] ?? '' };
    }
    if (template.length === tokens.length && template.every((t, i) => t === tokens[i])) return { endpoint };
  }
  const shape = tokens.map((t, i) => (i === 1 && PATH_PARAMS[first] ? PATH_PARAMS[first] : t));
  const generic = `${method} /${shape.join('/')}`;
  if (unmodelled.has(generic)) {
    throw new Fault(
      400,
      `fake firecracker: ${generic} is a real Firecracker endpoint this fake does not model`,
    );
  }
  throw fault('InvalidPathMethod', { method, path: first });
}

function handle(method, path, rawBody) {
  if (Buffer.byteLength(rawBody) > api.limits.apiPayloadBytes) {
    throw fault('PayloadTooLarge', { size: Buffer.byteLength(rawBody) });
  }
  const hasBody = rawBody.length > 0;
  if (method === 'GET' && hasBody) throw fault('GetWithBody');
  if (method === 'PUT' && !hasBody) throw fault('EmptyPut');
  if (method === 'PATCH' && !hasBody) throw fault('EmptyPatch');
  const { endpoint, id } = route(method, path);
  const key = `${endpoint.method} ${endpoint.path}`;
  let body;
  if (endpoint.body) {
    try {
      body = JSON.parse(rawBody);
    } catch (err) {
      throw deserializeFault(`${err.message}`);
    }
    if (endpoint.pathParam) {
      if (id === '') throw fault('EmptyID');
      if (!new RegExp(api.limits.resourceIdPattern).test(id)) throw fault('InvalidID');
    }
    check({ $ref: endpoint.body }, body, endpoint.body);
    if (endpoint.bodyIdField && body[endpoint.bodyIdField] !== id) {
      throw endpoint.pathParam === 'drive_id'
        ? fault('PathIdMismatchDrive')
        : fault('PathIdMismatchNet', { pathId: id, bodyId: body[endpoint.bodyIdField] });
    }
  }
  if (endpoint.phase) phaseCheck(endpoint.phase);
  const result = handlers[key](body, endpoint);
  return result ?? { status: endpoint.success };
}

function record(entry) {
  if (recordPath) appendFileSync(recordPath, `${JSON.stringify(entry)}\n`);
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const method = req.method ?? '';
    const path = (req.url ?? '/').split('?')[0];
    const rawBody = Buffer.concat(chunks).toString('utf8');
    let parsedBody;
    try {
      parsedBody = rawBody ? JSON.parse(rawBody) : undefined;
    } catch {
      parsedBody = rawBody;
    }
    if (crashOn && crashOn === `${method} ${path}`) {
      record({ method, path, body: parsedBody, status: 0, crashed: true });
      process.stderr.write(`fake firecracker: crashing on ${crashOn} as told\n`);
      process.exit(1);
    }
    let status;
    let payload;
    const injectedStatus = injected.get(`${method} ${path}`);
    if (injectedStatus !== undefined) {
      status = injectedStatus;
      payload = { fault_message: `fake firecracker: injected failure for ${method} ${path}` };
    } else {
      try {
        const out = handle(method, path, rawBody);
        status = out.status;
        payload = out.body;
      } catch (err) {
        if (!(err instanceof Fault)) throw err;
        status = err.status;
        payload = { fault_message: err.message };
      }
    }
    record({ method, path, body: parsedBody, status, ...(payload?.fault_message ? payload : {}) });
    if (payload === undefined) {
      res.writeHead(status);
      res.end();
      return;
    }
    const text = JSON.stringify(payload);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  });
});

function listen() {
  const exitCode = process.env.FAKE_FC_EXIT_BEFORE_SOCKET;
  if (exitCode) {
    process.stderr.write(
      `fake firecracker: exiting with ${exitCode} before binding the API socket, as told\n`,
    );
    process.exit(Number(exitCode));
  }
  if (existsSync(socketPath)) {
    process.stderr.write(
      `Failed to open the API socket at: ${socketPath}. Check that it is not already used.\n` +
        'Firecracker exiting with error. exit_code=1\n',
    );
    process.exit(cli.exitCodes.genericError);
  }
  server.on('error', (err) => {
    process.stderr.write(`Failed to bind and run the HTTP server: ${err.message}\n`);
    process.exit(cli.exitCodes.genericError);
  });
  server.listen(socketPath, () => {
    process.stdout.write(`Running Firecracker v${VERSION}\nListening on API socket ("${socketPath}").\n`);
  });
}

if (socketDelayMs > 0) setTimeout(listen, socketDelayMs);
else listen();
