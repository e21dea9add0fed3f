import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The `depends=` list from a kernel module's `.modinfo` section (NUL-separated key=value). */
export function modinfoDepends(ko: Buffer): string[] {
  const marker = Buffer.from('\0depends=');
  const at = ko.indexOf(marker);
  if (at < 0) return [];
  const start = at + marker.length;
  const end = ko.indexOf(0, start);
  const value = ko.subarray(start, end < 0 ? undefined : end).toString('utf8');
  return value
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean);
}

/**
 * Load order for `wanted` modules: every module after its dependencies, each once.
 * `depsOf` returns a module's direct dependencies; a cycle is an error.
 */
export function moduleLoadOrder(wanted: string[], depsOf: (name: string) => string[]): string[] {
  const order: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  const visit = (name: string) => {
    if (done.has(name)) return;
    if (visiting.has(name)) throw new Error(`kernel module dependency cycle at ${name}`);
    visiting.add(name);
    for (const dep of depsOf(name)) visit(dep);
    visiting.delete(name);
    done.add(name);
    order.push(name);
  };
  for (const name of wanted) visit(name);
  return order;
}

/** Finds module files (`name.ko`) under a kernel's `lib/modules/<version>` tree. */
export async function indexModules(modulesDir: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.name.endsWith('.ko')) {
        // modinfo names use underscores; file names may use dashes.
        index.set(entry.name.slice(0, -3).replaceAll('-', '_'), p);
      }
    }
  };
  await walk(modulesDir);
  return index;
}

/** Resolves `wanted` (and their dependencies) to files in load order. */
export async function resolveModules(
  modulesDir: string,
  wanted: string[],
): Promise<Array<{ name: string; path: string }>> {
  const index = await indexModules(modulesDir);
  const deps = new Map<string, string[]>();
  for (const name of wanted) await collect(name);
  async function collect(name: string): Promise<void> {
    if (deps.has(name)) return;
    const path = index.get(name);
    if (!path) throw new Error(`kernel module ${name} not found under ${modulesDir}`);
    const list = modinfoDepends(await readFile(path));
    deps.set(name, list);
    for (const d of list) await collect(d);
  }
  return moduleLoadOrder(wanted, (n) => deps.get(n) ?? []).map((name) => ({
    name,
    path: index.get(name)!,
  }));
}
