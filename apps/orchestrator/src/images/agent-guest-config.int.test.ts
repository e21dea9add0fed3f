import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IMAGES_SOURCE_DIR } from './build-image.js';

const exec = promisify(execFile);
const SCRIPT = join(IMAGES_SOURCE_DIR, 'agent/rootfs/opt/moltage/guest/openclaw-config.mjs');

/**
 * The agent image's boot-time config writer (images/agent/rootfs/opt/moltage/guest/
 * openclaw-config.mjs), run with Node as the guest runs it: per-VM config in, the VM user's
 * ~/.openclaw/openclaw.json out.
 */
describe('agent guest: openclaw.json from the per-VM config', () => {
  let dir: string;
  let home: string;
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'moltage-guest-config-'));
    home = join(dir, 'home');
    await mkdir(home);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeConfig(lines: string[]): Promise<string> {
    const file = join(dir, 'config');
    // NUL padding as on the real config disk.
    await writeFile(file, Buffer.concat([Buffer.from(`${lines.join('\n')}\n`), Buffer.alloc(300)]));
    return file;
  }

  async function runWriter(configFile: string) {
    return exec(process.execPath, [
      SCRIPT,
      '--config',
      configFile,
      '--home',
      home,
      '--uid',
      String(uid),
      '--gid',
      String(gid),
    ]);
  }

  // biome-ignore lint/suspicious/noExplicitAny: the written JSON, read back to assert on its shape
  async function readJson(): Promise<Record<string, any>> {
    return JSON.parse(await readFile(join(home, '.openclaw/openclaw.json'), 'utf8'));
  }

  it('writes the gateway, plugin, channel and model settings, escaping every value', async () => {
    const hostile = 'k"ey\\with\'quotes$(rm -rf /)`x`\t{}';
    await runWriter(
      await writeConfig([
        'MOLTAGE_CONFIG_V1',
        'agent_port=8789',
        `agent_token=${hostile}`,
        'callback_url=http://10.0.1.1:3000/callback',
        'callback_token=cb-tok"en',
        'llm_base_url=http://10.0.1.1:3100/v1',
        `llm_api_key=${hostile}`,
        'llm_model=qwen/模型"1',
        'agent_token=second-occurrence-is-ignored',
      ]),
    );
    const cfg = await readJson();
    expect(cfg.gateway).toMatchObject({
      mode: 'local',
      port: 18789,
      bind: 'loopback',
      auth: { mode: 'token' },
    });
    expect(cfg.gateway.auth.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(cfg.gateway.controlUi).toEqual({ enabled: false });
    expect(cfg.update).toEqual({ checkOnStart: false });
    expect(cfg.discovery).toEqual({ mdns: { mode: 'off' } });
    expect(cfg.plugins).toEqual({
      allow: ['webhook-server'],
      load: { paths: ['/opt/moltage/openclaw-plugin'] },
      entries: {
        // On loopback: run-agent-gate publishes it on agent_port once OpenClaw is ready.
        'webhook-server': { enabled: true, config: { port: 18780, host: '127.0.0.1', authToken: hostile } },
      },
    });
    expect(cfg.channels).toEqual({
      moltage: { config: { callbackUrl: 'http://10.0.1.1:3000/callback', callbackToken: 'cb-tok"en' } },
    });
    expect(cfg.models.providers.moltage).toMatchObject({
      baseUrl: 'http://10.0.1.1:3100/v1',
      apiKey: hostile,
      api: 'openai-completions',
      models: [{ id: 'qwen/模型"1', name: 'qwen/模型"1', input: ['text'] }],
    });
    expect(cfg.agents.defaults.model.primary).toBe('moltage/qwen/模型"1');
    expect(cfg.session.dmScope).toBe('per-channel-peer');
    expect((await stat(join(home, '.openclaw/openclaw.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(home, '.openclaw'))).mode & 0o777).toBe(0o700);
  });

  it('keeps what the user or OpenClaw added and replaces only what Moltage manages', async () => {
    await mkdir(join(home, '.openclaw'), { recursive: true });
    await writeFile(
      join(home, '.openclaw/openclaw.json'),
      JSON.stringify({
        meta: { lastTouchedVersion: '2026.9.6' },
        gateway: { controlUi: { enabled: true }, port: 1 },
        agents: { defaults: { workspace: '~/work', model: { primary: 'old/model' } } },
        plugins: { entries: { 'webhook-server': { config: { authToken: 'old-token', useNgrok: false } } } },
      }),
    );
    await runWriter(
      await writeConfig([
        'MOLTAGE_CONFIG_V1',
        'agent_token=new-token-0123456789',
        'llm_base_url=http://h/v1',
        'llm_model=m',
      ]),
    );
    const cfg = await readJson();
    expect(cfg.meta).toEqual({ lastTouchedVersion: '2026.9.6' });
    // The user's choice of a proposed setting stays; a managed one is Moltage's again.
    expect(cfg.gateway.controlUi).toEqual({ enabled: true });
    expect(cfg.gateway.port).toBe(18789);
    expect(cfg.agents.defaults).toEqual({ workspace: '~/work', model: { primary: 'moltage/m' } });
    expect(cfg.plugins.entries['webhook-server'].config).toEqual({
      authToken: 'new-token-0123456789',
      useNgrok: false,
      port: 18780,
      host: '127.0.0.1',
    });
  });

  it('sets a broken openclaw.json aside instead of failing the boot', async () => {
    await mkdir(join(home, '.openclaw'), { recursive: true });
    await writeFile(join(home, '.openclaw/openclaw.json'), '{ not json');
    await runWriter(await writeConfig(['MOLTAGE_CONFIG_V1', 'agent_token=token-0123456789']));
    const files = await readdir(join(home, '.openclaw'));
    expect(files.some((f) => f.startsWith('openclaw.json.invalid-'))).toBe(true);
    const cfg = await readJson();
    expect(cfg.plugins.entries['webhook-server'].config.authToken).toBe('token-0123456789');
    expect(cfg.models).toBeUndefined();
  });

  it('refuses a config without the magic line or without an agent token, writing nothing', async () => {
    await expect(runWriter(await writeConfig(['agent_token=token-0123456789']))).rejects.toMatchObject({
      stderr: expect.stringContaining('MOLTAGE_CONFIG_V1'),
    });
    await expect(runWriter(await writeConfig(['MOLTAGE_CONFIG_V1', 'llm_model=m']))).rejects.toMatchObject({
      stderr: expect.stringContaining('agent_token'),
    });
    await expect(
      runWriter(
        await writeConfig([
          'MOLTAGE_CONFIG_V1',
          'agent_token=token-0123456789',
          'callback_url=file:///etc/passwd',
        ]),
      ),
    ).rejects.toMatchObject({ stderr: expect.stringContaining('callback_url') });
    expect(await readdir(home)).toEqual([]);
  });
});
