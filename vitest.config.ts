import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

// Tests import workspace packages from their TypeScript sources, so no build is needed
// between editing a library and testing a service that uses it.
const alias: Record<string, string> = {};
for (const group of ['packages', 'apps']) {
  for (const dir of readdirSync(group)) {
    try {
      const pkg = JSON.parse(readFileSync(join(group, dir, 'package.json'), 'utf8'));
      alias[pkg.name] = resolve(group, dir, 'src/index.ts');
    } catch {
      // not a workspace package
    }
  }
}

export default defineConfig({
  resolve: { alias },
  test: {
    include: [
      '{apps,packages}/*/src/**/*.test.ts',
      'bench/**/*.test.ts',
      'deploy/**/*.test.ts',
      'images/**/*.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
