import { request } from 'node:http';
import type {
  BootSource,
  Drive,
  InstanceActionType,
  InstanceInfo,
  LoggerConfig,
  MachineConfig,
  MetricsConfig,
  MmdsConfig,
  NetworkInterface,
  VmStateUpdate,
} from './api-types.js';
import { FirecrackerApiError } from './errors.js';

export type HttpMethod = 'GET' | 'PUT' | 'PATCH';

export interface FirecrackerClientOptions {
  /** Firecracker's API socket (`--api-sock`), as seen from this host. */
  socketPath: string;
  /** Default bound on one call, connect to last byte. */
  timeoutMs?: number;
}

export interface CallOptions {
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
/** Firecracker answers are small; anything bigger is not Firecracker. */
const MAX_RESPONSE_BYTES = 1024 * 1024;
const UNREACHABLE_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTSOCK', 'EACCES']);

/**
 * A thin client for one Firecracker API socket. Every failure is a FirecrackerApiError naming
 * the method, path and socket, with Firecracker's status and `fault_message` when it answered.
 */
export class FirecrackerClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;

  constructor(opts: FirecrackerClientOptions) {
    this.socketPath = opts.socketPath;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** One API call. Resolves with the parsed JSON body (undefined for 204). */
  request<T = unknown>(method: HttpMethod, path: string, body?: unknown, opts: CallOptions = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const context = { method, path, socketPath: this.socketPath };

    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | undefined, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value as T);
      };

      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: {
            Accept: 'application/json',
            ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              res.destroy();
              finish(
                new FirecrackerApiError('ORCH_FIRECRACKER_API', {
                  ...context,
                  status: res.statusCode,
                  faultMessage: `response larger than ${MAX_RESPONSE_BYTES} bytes`,
                }),
              );
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', (err) =>
            finish(
              new FirecrackerApiError('ORCH_FIRECRACKER_API_UNREACHABLE', {
                ...context,
                reason: `broke off while reading the answer: ${err.message}`,
                cause: err,
              }),
            ),
          );
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            if (text.length > 0) {
              try {
                json = JSON.parse(text);
              } catch {
                json = undefined;
              }
            }
            if (status >= 200 && status < 300) {
              if (text.length > 0 && json === undefined) {
                finish(
                  new FirecrackerApiError('ORCH_FIRECRACKER_API', {
                    ...context,
                    status,
                    faultMessage: `answer is not JSON: ${text.slice(0, 200)}`,
                  }),
                );
                return;
              }
              finish(undefined, json as T);
              return;
            }
            const fault =
              json && typeof json === 'object' && 'fault_message' in json
                ? String((json as { fault_message: unknown }).fault_message)
                : text.slice(0, 500) || undefined;
            finish(
              new FirecrackerApiError('ORCH_FIRECRACKER_API', { ...context, status, faultMessage: fault }),
            );
          });
        },
      );

      const timer = setTimeout(() => {
        finish(
          new FirecrackerApiError('ORCH_FIRECRACKER_API_TIMEOUT', {
            ...context,
            reason: `got no answer within ${timeoutMs} ms`,
          }),
        );
        req.destroy();
      }, timeoutMs);

      req.on('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? '';
        finish(
          new FirecrackerApiError('ORCH_FIRECRACKER_API_UNREACHABLE', {
            ...context,
            reason: UNREACHABLE_CODES.has(code)
              ? `is unreachable (${code}: ${err.message})`
              : `failed: ${err.message}`,
            cause: err,
          }),
        );
      });
      if (payload) req.end(payload);
      else req.end();
    });
  }

  describeInstance(opts?: CallOptions): Promise<InstanceInfo> {
    return this.request<InstanceInfo>('GET', '/', undefined, opts);
  }

  getMachineConfig(opts?: CallOptions): Promise<MachineConfig> {
    return this.request<MachineConfig>('GET', '/machine-config', undefined, opts);
  }

  async putMachineConfig(config: MachineConfig, opts?: CallOptions): Promise<void> {
    await this.request('PUT', '/machine-config', config, opts);
  }

  async putBootSource(source: BootSource, opts?: CallOptions): Promise<void> {
    await this.request('PUT', '/boot-source', source, opts);
  }

  async putDrive(drive: Drive, opts?: CallOptions): Promise<void> {
    await this.request('PUT', `/drives/${encodeURIComponent(drive.drive_id)}`, drive, opts);
  }

  async putNetworkInterface(iface: NetworkInterface, opts?: CallOptions): Promise<void> {
    await this.request('PUT', `/network-interfaces/${encodeURIComponent(iface.iface_id)}`, iface, opts);
  }

  async action(actionType: InstanceActionType, opts?: CallOptions): Promise<void> {
    await this.request('PUT', '/actions', { action_type: actionType }, opts);
  }

  async putLogger(config: LoggerConfig, opts?: CallOptions): Promise<void> {
    await this.request('PUT', '/logger', config, opts);
  }

  async putMetrics(config: MetricsConfig, opts?: CallOptions): Promise<void> {
    await this.request('PUT', '/metrics', config, opts);
  }

  async putMmdsConfig(config: MmdsConfig, opts?: CallOptions): Promise<void> {
    await this.request('PUT', '/mmds/config', config, opts);
  }

  async putMmds(data: Record<string, unknown>, opts?: CallOptions): Promise<void> {
    await this.request('PUT', '/mmds', data, opts);
  }

  async patchVm(update: VmStateUpdate, opts?: CallOptions): Promise<void> {
    await this.request('PATCH', '/vm', update, opts);
  }
}
