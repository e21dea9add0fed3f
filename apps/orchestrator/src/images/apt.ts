import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../adapters/exec.js';

export interface DebPackage {
  name: string;
  version: string;
  sha256: string;
}

/** Parses `apt-cache show` output (one stanza per package). */
export function parseAptShow(text: string): DebPackage[] {
  const out: DebPackage[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (k: string) => stanza.match(new RegExp(`^${k}: (.+)$`, 'm'))?.[1]?.trim();
    const name = field('Package');
    const version = field('Version');
    const sha256 = field('SHA256');
    if (name && version && sha256) out.push({ name, version, sha256 });
  }
  return out;
}

const APT_HINT = 'is the Debian apt index present? (run apt-get update)';

/** The concrete package a metapackage depends on (e.g. linux-image-cloud-amd64 → linux-image-6.1…). */
export async function resolveMetaPackage(meta: string, prefix: string): Promise<string> {
  let text: string;
  try {
    text = (await run('apt-cache', ['depends', meta], { timeoutMs: 60_000 })).stdout.toString();
  } catch (err) {
    throw new Error(`cannot resolve ${meta}; ${APT_HINT}`, { cause: err });
  }
  const dep = text.match(new RegExp(`Depends: (${prefix}[^\\s<>]+)`))?.[1];
  if (!dep) throw new Error(`cannot resolve ${meta} to a ${prefix}* package; ${APT_HINT}`);
  return dep;
}

/** Candidate version and checksum of each package, in the order given. */
export async function candidatePackages(names: string[]): Promise<DebPackage[]> {
  let text: string;
  try {
    text = (
      await run('apt-cache', ['show', '--no-all-versions', ...names], { timeoutMs: 60_000 })
    ).stdout.toString();
  } catch (err) {
    throw new Error(`cannot look up ${names.join(' ')}; ${APT_HINT}`, { cause: err });
  }
  const found = parseAptShow(text);
  return names.map((n) => {
    const p = found.find((f) => f.name === n);
    if (!p) throw new Error(`Debian package ${n} not found; ${APT_HINT}`);
    return p;
  });
}

/** Downloads the exact versions into `dir`; returns package name → .deb path. */
export async function downloadPackages(pkgs: DebPackage[], dir: string): Promise<Map<string, string>> {
  const args = ['download', '-q'];
  if (process.getuid?.() === 0) args.push('-o', 'APT::Sandbox::User=root');
  args.push(...pkgs.map((p) => `${p.name}=${p.version}`));
  await run('apt-get', args, { cwd: dir, timeoutMs: 600_000 });
  const files = await readdir(dir);
  const byName = new Map<string, string>();
  for (const p of pkgs) {
    const file = files.find((f) => f.startsWith(`${p.name}_`) && f.endsWith('.deb'));
    if (!file) throw new Error(`apt-get download did not produce ${p.name}`);
    byName.set(p.name, join(dir, file));
  }
  return byName;
}

export async function extractDeb(deb: string, into: string): Promise<void> {
  await run('dpkg-deb', ['-x', deb, into], { timeoutMs: 300_000 });
}
