import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentConfig,
  buildPlugin,
  configPath,
  isolatedEnv,
  openclawRuntime,
  patchConfig,
  run,
  stagePlugin,
} from './test-support/openclaw-runtime.js';

/** Runs the pinned OpenClaw CLI (Node 24) as a child process; vitest itself runs on Node 20. */
describe('installing the plugin into the pinned OpenClaw', () => {
  const { node, cli } = openclawRuntime();
  let root: string;
  let home: string;
  let stage: string;
  const openclaw = (...args: string[]) =>
    run(node, [cli, ...args], { env: isolatedEnv(home), timeoutMs: 120_000 });

  beforeAll(async () => {
    await buildPlugin();
    root = await mkdtemp(join(tmpdir(), 'moltage-oc-install-'));
    home = join(root, 'home');
    stage = await stagePlugin(join(root, 'plugin'));
    await patchConfig(home, { logging: { file: join(root, 'openclaw.log') } });
  }, 240_000);
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('installs non-interactively with `openclaw plugins install -l`', async () => {
    const res = await openclaw('plugins', 'install', '-l', stage, '--force', '--accept-capabilities');
    expect(res.code, res.output).toBe(0);
    expect(res.output).toContain(`Linked plugin path: ${stage}`);
    const cfg = JSON.parse(await readFile(configPath(home), 'utf8'));
    expect(cfg.plugins.load.paths).toContain(stage);
    // authToken is required, so OpenClaw leaves the plugin off until it is configured.
    expect(cfg.plugins.entries['webhook-server']).toEqual({ enabled: false });

    const inspect = await openclaw('plugins', 'inspect', 'webhook-server', '--json');
    expect(inspect.code, inspect.output).toBe(0);
    const info = JSON.parse(inspect.output.slice(inspect.output.indexOf('{')));
    expect(info.plugin).toMatchObject({ id: 'webhook-server', channelIds: ['moltage'], format: 'openclaw' });
  }, 120_000);

  it('is accepted by OpenClaw with the agent config, and OpenClaw enforces its strict schemas', async () => {
    await patchConfig(
      home,
      agentConfig({
        gatewayPort: 18_789,
        gatewayToken: 'gateway-token-0123456789',
        llmBaseUrl: 'http://127.0.0.1:9/v1',
        llmApiKey: 'sk-test',
        llmModel: 'fake-model',
        webhookPort: 8789,
        authToken: 'webhook-token-0123456789',
        callbackUrl: 'http://127.0.0.1:3000/callback',
        callbackToken: 'cb-token',
        webhookExtra: { useNgrok: false, ngrokPort: 8789, ngrokRegion: 'eu' },
      }),
    );
    const good = await openclaw('config', 'validate', '--json');
    expect(good.code, good.output).toBe(0);
    expect(JSON.parse(good.output.slice(good.output.indexOf('{')))).toMatchObject({ valid: true });

    await patchConfig(home, {
      plugins: { entries: { 'webhook-server': { config: { bogus: 1 } } } },
      channels: { moltage: { config: { nope: 2 } } },
    });
    const bad = await openclaw('config', 'validate', '--json');
    const report = JSON.parse(bad.output.slice(bad.output.indexOf('{')));
    expect(report.valid).toBe(false);
    const issues = JSON.stringify(report.issues);
    expect(issues).toContain('plugins.entries.webhook-server.config');
    expect(issues).toContain('bogus');
    expect(issues).toContain('channels.moltage.config');
    expect(issues).toContain('nope');
  }, 120_000);
});
