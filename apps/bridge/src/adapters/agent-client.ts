import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AgentClient, AgentPayload, AgentTarget } from '../domain/ports.js';
import { BridgeError } from '../errors.js';
import { guardedLookup, type Resolver, systemResolver } from './address-guard.js';

/**
 * Posts messages to agent webhooks (a VM's plugin or a user's own OpenClaw) with the bearer
 * token. User-supplied URLs (`guard`) connect only to public addresses, checked at connect time.
 * Redirects are not followed.
 */
export class HttpAgentClient implements AgentClient {
  readonly #lookup;

  constructor(
    private readonly timeoutMs = 15_000,
    resolver: Resolver = systemResolver,
  ) {
    this.#lookup = guardedLookup(resolver);
  }

  dispatch(target: AgentTarget, payload: AgentPayload, signal?: AbortSignal): Promise<void> {
    let url: URL;
    try {
      url = new URL(target.url);
    } catch (err) {
      return Promise.reject(
        new BridgeError('BRIDGE_AGENT_UNREACHABLE', 'agent URL is invalid', { cause: err }),
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return Promise.reject(new BridgeError('BRIDGE_AGENT_UNREACHABLE', 'agent URL is not http(s)'));
    }
    const body = Buffer.from(JSON.stringify(payload), 'utf8');
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<void>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': body.length,
            authorization: `Bearer ${target.token}`,
            'user-agent': 'moltage-bridge',
          },
          timeout: this.timeoutMs,
          ...(target.guard ? { lookup: this.#lookup } : {}),
          ...(signal ? { signal } : {}),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          res.resume();
          res.on('error', () => {});
          if (status >= 200 && status < 300) resolve();
          else reject(new BridgeError('BRIDGE_AGENT_REJECTED', `agent answered HTTP ${status}`));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (signal?.aborted) reject(new BridgeError('BRIDGE_ABORTED', 'shutting down', { cause: err }));
        else
          reject(
            new BridgeError('BRIDGE_AGENT_UNREACHABLE', `agent unreachable: ${err.code ?? err.message}`, {
              cause: err,
            }),
          );
      });
      req.end(body);
    });
  }
}
