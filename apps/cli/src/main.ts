import { runBridge } from '@moltage/bridge';
import { ConfigError } from '@moltage/core';
import { buildImage, runOrchestrator } from '@moltage/orchestrator';
import { runSimulator } from '@moltage/simulator';
import { ensureGatewayKeys, runSshGateway } from '@moltage/ssh-gateway';
import { Command, CommanderError } from 'commander';
import { formatReport, runChecks } from './commands/doctor.js';
import { bringUp, formatTable } from './commands/up.js';

const program = new Command();
program
  .name('moltage')
  .description('Moltage: an AI agent per WeChat user, each in a microVM of their own.')
  .version('0.1.0')
  .exitOverride();

program
  .command('doctor')
  .description('check this host (Node, Redis, QEMU/Firecracker, /dev/kvm, images, ports) and say what to fix')
  .action(async () => {
    const results = await runChecks({ env: process.env });
    process.stdout.write(`${formatReport(results)}\n`);
    process.exitCode = results.some((r) => r.status === 'fail') ? 1 : 0;
  });

program
  .command('up')
  .description(
    'run the whole stack on this machine (demo mode with the simulator unless WECHAT_APPID is set)',
  )
  .option(
    '--data-dir <dir>',
    'where Redis data, logs and demo secrets live',
    process.env.MOLTAGE_DATA_DIR ?? './data',
  )
  .action(async (opts: { dataDir: string }) => {
    const out = (line: string) => process.stdout.write(`${line}\n`);
    const stack = await bringUp({
      dataDir: opts.dataDir,
      env: process.env,
      out,
      buildImage: async (kind, imageDir) => {
        const started = Date.now();
        await buildImage({
          kind: kind as Parameters<typeof buildImage>[0]['kind'],
          imageDir,
          onProgress: (p) =>
            out(`  [${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${p.message}`),
        });
      },
      ensureGatewayKeys: async (hostKeyPath) => (await ensureGatewayKeys(hostKeyPath)).upstream.path + '.pub',
    });
    let stopping = false;
    const stop = async (code: number) => {
      if (stopping) return;
      stopping = true;
      out('\nstopping…');
      await stack.supervisor.stopAll();
      out('stopped.');
      process.exit(code);
    };
    stack.supervisor.onUnexpectedExit = (name, code, log) => {
      process.stderr.write(`moltage: ${name} exited unexpectedly (code ${code}); see ${log}\n`);
      void stop(1);
    };
    process.on('SIGINT', () => void stop(0));
    process.on('SIGTERM', () => void stop(0));
    out(`\nMoltage is up.\n${formatTable(stack.rows)}\n\nPress Ctrl-C to stop everything.`);
  });

/** First SIGTERM/SIGINT: close the service and exit 0 (1 if closing failed); a second: exit at once. */
function onShutdown(close: () => Promise<void>) {
  let closing = false;
  const handler = (signal: NodeJS.Signals) => {
    if (closing) process.exit(signal === 'SIGINT' ? 130 : 143);
    closing = true;
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(
          `moltage: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/**
 * A service command hands its own options to the service, which parses them together with
 * the environment (so `moltage sim --help` shows the simulator's own usage).
 */
function serviceCommand(name: string, description: string, run: (argv: string[]) => Promise<unknown>) {
  program
    .command(name)
    .description(description)
    .helpOption(false)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .argument('[options...]')
    .action(async (args: string[]) => {
      await run(args);
    });
}

const image = program.command('image').description('guest images for the VMs');
image
  .command('build')
  .description('build the guest image into VM_IMAGE_DIR (reuses a cached build whose inputs did not change)')
  .option('--tiny', 'the small test image (busybox + dropbear, no agent) instead of the agent image')
  .option(
    '--tiny-agent',
    'the small test image plus a shell agent speaking the agent contract (VM_IMAGE=tiny-agent: tests, benchmarks)',
  )
  .option('--force', 'rebuild even when the cached build is up to date')
  .option('--image-dir <dir>', 'where images live', process.env.VM_IMAGE_DIR ?? '/var/lib/moltage/images')
  .action(async (opts: { tiny?: boolean; tinyAgent?: boolean; force?: boolean; imageDir: string }) => {
    if (opts.tiny && opts.tinyAgent) {
      process.stderr.write('moltage image build: choose one of --tiny and --tiny-agent\n');
      process.exit(2);
    }
    const started = Date.now();
    const built = await buildImage({
      kind: opts.tinyAgent ? 'tiny-agent' : opts.tiny ? 'tiny' : 'agent',
      imageDir: opts.imageDir,
      force: opts.force ?? false,
      onProgress: (p) =>
        process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${p.message}\n`),
    });
    process.stdout.write(`${built.cached ? 'cached' : 'built'}: ${built.dir}\n`);
  });

serviceCommand('bridge', 'the WeChat bridge service, configured from the environment', async () => {
  await runBridge();
});

serviceCommand('orchestrator', 'the VM orchestrator service, configured from the environment', async () => {
  const orch = await runOrchestrator();
  orch.app.log.info({ url: orch.url }, 'orchestrator listening');
  onShutdown(() => orch.close());
});

serviceCommand(
  'ssh-gateway',
  'the SSH gateway (ssh -p 2222 <openid>@host), configured from the environment',
  async () => {
    const gw = await runSshGateway();
    onShutdown(() => gw.close());
  },
);

serviceCommand('sim', 'the WeChat platform simulator and the fake LLM (moltage sim --help)', (argv) =>
  runSimulator(argv),
);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode);
  }
  if (err instanceof ConfigError) {
    for (const line of err.problems) process.stderr.write(`moltage: ${line}\n`);
  } else {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`moltage: ${msg}\n`);
  }
  process.exit(1);
}
