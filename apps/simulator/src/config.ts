import { parseArgs } from 'node:util';
import { ConfigError, env, parseEnv } from '@moltage/core';
import { z } from 'zod';
import { accountFields } from './domain/account.js';

/** The simulator's environment. Missing credentials are generated at start and printed in the banner. */
export const configSchema = z.object({
  SIM_PORT: env.port(3100),
  SIM_HOST: z.string().min(1).default('127.0.0.1'),
  SIM_APPID: accountFields.appId.optional(),
  SIM_APPSECRET: accountFields.appSecret.optional(),
  SIM_TOKEN: accountFields.token.optional(),
  SIM_AES_KEY: accountFields.encodingAesKey.optional(),
  SIM_MODE: accountFields.mode.default('plaintext'),
  SIM_BRIDGE_URL: env.url().optional(),
  SIM_ORIGINAL_ID: accountFields.originalId.optional(),
  /** The URL the simulator is reachable under (for media URLs in pushes); default its listen address. */
  SIM_PUBLIC_URL: env.url().optional(),
  /** Bearer key the fake LLM requires; unset: any key is accepted. */
  SIM_LLM_API_KEY: z.string().min(1).max(512).optional(),
  LOG_LEVEL: env.logLevel(),
});
export type SimConfig = z.infer<typeof configSchema>;

export const USAGE = `Usage: moltage sim [--port N] [--host ADDR] [--bridge-url URL] [--mode plaintext|compatible|safe]

Runs the WeChat platform simulator (API under /cgi-bin, chat page at /, JSON API under /sim)
and the fake OpenAI-compatible LLM (under /v1).

Environment: SIM_PORT (3100), SIM_HOST (127.0.0.1), SIM_APPID, SIM_APPSECRET, SIM_TOKEN,
SIM_AES_KEY, SIM_MODE (plaintext), SIM_BRIDGE_URL, SIM_ORIGINAL_ID, SIM_PUBLIC_URL,
SIM_LLM_API_KEY, LOG_LEVEL (info). Options override the environment. Credentials that are
not set are generated and printed once at start.
`;

const OPTION_TO_ENV = {
  port: 'SIM_PORT',
  host: 'SIM_HOST',
  'bridge-url': 'SIM_BRIDGE_URL',
  mode: 'SIM_MODE',
} as const;

/**
 * Reads the command line and the environment (options win). Returns null for `--help`.
 * Throws ConfigError listing every problem, options named as options.
 */
export function loadConfig(argv: string[], environment: NodeJS.ProcessEnv): SimConfig | null {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'bridge-url': { type: 'string' },
        mode: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }
  if (values['help']) return null;
  const merged: NodeJS.ProcessEnv = { ...environment };
  const fromOption = new Map<string, string>();
  for (const [opt, name] of Object.entries(OPTION_TO_ENV)) {
    const v = values[opt];
    if (typeof v === 'string') {
      merged[name] = v;
      fromOption.set(name, opt);
    }
  }
  try {
    return parseEnv(configSchema, merged);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(
      err.problems.map((line) => {
        for (const [name, opt] of fromOption) {
          if (line.includes(`variable ${name}:`))
            return line.replace(`environment variable ${name}`, `option --${opt}`);
        }
        return line;
      }),
    );
  }
}
