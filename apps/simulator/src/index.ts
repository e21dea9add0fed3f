export { type BuildSimulatorOptions, buildSimulator, redactUrl } from './app.js';
export {
  type FaultSpec,
  SimulatorClient,
  SimulatorClientError,
  type SimulatorClientOptions,
} from './client.js';
export { configSchema, loadConfig, type SimConfig, USAGE } from './config.js';
export {
  type AccountConfig,
  type AccountPatch,
  MODES,
  type Mode,
  type PublicAccount,
} from './domain/account.js';
export { type Clock, VirtualClock } from './domain/clock.js';
export { ERRMSG, type WxResult, wxError } from './domain/errcodes.js';
export {
  chunkText,
  type Directives,
  longText,
  parseDirectives,
  type ScriptedAnswer,
  scriptAnswer,
} from './domain/fake-llm.js';
export {
  type EndpointFaults,
  FAULT_ENDPOINTS,
  type FaultEndpoint,
  type FaultPatch,
} from './domain/faults.js';
export { type UserMessage, userMessageSchema } from './domain/inbound.js';
export { MAX_TEXT_BYTES } from './domain/outbound.js';
export type {
  ApiCall,
  CountedAgainst,
  InboxEntry,
  LlmRequestRecord,
  PassiveReply,
  PushAttempt,
  PushRecord,
  PushStatus,
  SimEvent,
  SimUser,
} from './domain/records.js';
export {
  SimClosedError,
  SimConflictError,
  SimError,
  SimNotFoundError,
  SimValidationError,
} from './errors.js';
export { banner, type RunningSimulator, type RunSimulatorOptions, runSimulator } from './main.js';
export {
  generateAccount,
  SERVICE_UNAVAILABLE_NOTICE,
  Simulator,
  type SimulatorOptions,
} from './simulator.js';
export { type StartedSimulator, type StartSimulatorOptions, startSimulator } from './start.js';
