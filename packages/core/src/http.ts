import { Agent } from 'undici';

let longWait: Agent | undefined;

/**
 * A `fetch` dispatcher for calls whose answer may take longer than undici's default 300 s
 * headers/body timeouts, such as `POST /api/v1/vms`, which answers once a cold-started VM's
 * agent is ready (minutes under emulation). The caller bounds the call with its own
 * `AbortSignal` instead.
 */
export function longWaitDispatcher(): Agent {
  longWait ??= new Agent({ headersTimeout: 0, bodyTimeout: 0 });
  return longWait;
}
