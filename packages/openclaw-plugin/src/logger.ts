/** The logger shape OpenClaw hands to plugins (`api.logger`, service `ctx.logger`). */
export interface PluginLogger {
  debug?: (message: string) => void;
  info: (message: string) => void;
  warn: (message: string) => void;
  error: (message: string) => void;
}

/** A logger that writes nothing (tests, and code paths that have no logger yet). */
export const silentLogger: PluginLogger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
