/**
 * Interfaces the bridge's logic needs from the outside world; adapters/ implements them. Tests
 * use the real adapters against real Redis, the simulator and test servers.
 */

/** The orchestrator's VM record (DESIGN.md → Orchestrator API). */
export interface VmRecord {
  user_id: string;
  state: 'creating' | 'running' | 'stopped' | 'error' | string;
  ip?: string | null;
  ssh?: { host: string; port: number } | null;
  agent_url?: string | null;
  agent_token?: string | null;
  created_at?: string;
  last_active_at?: string;
  error?: string | null;
}

export interface Orchestrator {
  /** `POST /api/v1/vms`: creates, starts or returns the user's VM. */
  ensure(openid: string, callback: { url: string; token: string }, signal?: AbortSignal): Promise<VmRecord>;
  /** `GET /api/v1/vms/:user_id`, null on 404. */
  get(openid: string, signal?: AbortSignal): Promise<VmRecord | null>;
  /** `POST /api/v1/vms/:user_id/touch`. */
  touch(openid: string): Promise<void>;
  /** `DELETE /api/v1/vms/:user_id` (data disk kept). */
  stop(openid: string, signal?: AbortSignal): Promise<void>;
}

/** The JSON body the bridge posts to an agent webhook (ours plus the original plugin's fields). */
export interface AgentPayload {
  message_id: string;
  openid: string;
  text: string;
  msg_type: string;
  callback_url: string;
  callback_token: string;
  timestamp: number;
  task: string;
  metadata: { openid: string; msg_type: string; msg_id: string; message_id: string; timestamp: number };
}

export interface AgentTarget {
  url: string;
  token: string;
  /** Refuse private/loopback/… addresses at connect time (user-supplied URLs). */
  guard: boolean;
}

export interface AgentClient {
  /** Resolves when the agent accepted the message (2xx); throws BRIDGE_AGENT_UNREACHABLE/REJECTED. */
  dispatch(target: AgentTarget, payload: AgentPayload, signal?: AbortSignal): Promise<void>;
}

/** Result of one customer-service send after retries. */
export type SendOutcome =
  | { ok: true }
  | { ok: false; permanent: true; errcode: number }
  | { ok: false; permanent: false; error: string };

export interface WeChatOutbound {
  sendText(openid: string, text: string, signal?: AbortSignal): Promise<SendOutcome>;
  typing(openid: string, command: 'Typing' | 'CancelTyping'): Promise<void>;
}
