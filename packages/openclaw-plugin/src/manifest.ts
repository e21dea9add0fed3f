import { readFileSync } from 'node:fs';
import { CHANNEL_ID } from './constants.js';

/** JSON Schema object as written in openclaw.plugin.json. */
export type JsonSchemaObject = Record<string, unknown>;

export interface PluginManifest {
  id: string;
  name?: string;
  description?: string;
  version?: string;
  channels?: string[];
  activation?: { onStartup?: boolean };
  configSchema: JsonSchemaObject;
  channelConfigs?: Record<string, { schema: JsonSchemaObject; uiHints?: Record<string, unknown> }>;
  uiHints?: Record<string, unknown>;
}

let cached: PluginManifest | undefined;

/** openclaw.plugin.json of this package (one level above src/ and dist/): the single source of the schemas. */
export function readManifest(): PluginManifest {
  cached ??= JSON.parse(
    readFileSync(new URL('../openclaw.plugin.json', import.meta.url), 'utf8'),
  ) as PluginManifest;
  return cached;
}

export function pluginConfigSchema(): JsonSchemaObject {
  return readManifest().configSchema;
}

export function channelConfigSchema(): JsonSchemaObject {
  const entry = readManifest().channelConfigs?.[CHANNEL_ID];
  if (!entry) throw new Error(`openclaw.plugin.json declares no channelConfigs.${CHANNEL_ID}`);
  return entry.schema;
}
