#!/usr/bin/env node
// The `moltage` command. The CLI is TypeScript compiled to apps/cli/dist by `scripts/setup.sh`.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'apps', 'cli', 'dist', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write('moltage: not built yet — run ./scripts/setup.sh (installs packages and compiles)\n');
  process.exit(1);
}
await import(entry);
