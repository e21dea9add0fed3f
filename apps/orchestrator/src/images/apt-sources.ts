import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One `deb` source: a mirror URI and the suites/components taken from it. */
export interface AptSource {
  uri: string;
  suites: string[];
  components: string[];
}

/** One-line format (`/etc/apt/sources.list`, `*.list`): `deb [options] uri suite component…`. */
export function parseOneLineSources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const withoutOptions = line.replace(/\[[^\]]*\]/, ' ');
    const [type, uri, suite, ...components] = withoutOptions.split(/\s+/).filter(Boolean);
    if (type !== 'deb' || !uri || !suite) continue;
    out.push({ uri, suites: [suite], components });
  }
  return out;
}

/** deb822 format (`*.sources`): stanzas of `Field: value` with Types, URIs, Suites, Components. */
export function parseDeb822Sources(text: string): AptSource[] {
  const out: AptSource[] = [];
  const lines = text.split('\n').filter((l) => !l.startsWith('#'));
  for (const stanza of lines.join('\n').split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of stanza.split('\n')) {
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`);
        continue;
      }
      const m = line.match(/^([A-Za-z0-9-]+):\s*(.*)$/);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
    const list = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    if (!list('types').includes('deb')) continue;
    if (/^(no|false|0)$/i.test(fields.get('enabled') ?? 'yes')) continue;
    for (const uri of list('uris')) {
      out.push({ uri, suites: list('suites'), components: list('components') });
    }
  }
  return out;
}

/** Every `deb` source this machine's apt uses, in file order. */
export async function hostAptSources(etcApt = '/etc/apt'): Promise<AptSource[]> {
  const out: AptSource[] = [];
  const main = await readFile(join(etcApt, 'sources.list'), 'utf8').catch(() => '');
  out.push(...parseOneLineSources(main));
  const dir = join(etcApt, 'sources.list.d');
  const files = (await readdir(dir).catch(() => [] as string[])).sort();
  for (const f of files) {
    const text = await readFile(join(dir, f), 'utf8').catch(() => '');
    if (f.endsWith('.list')) out.push(...parseOneLineSources(text));
    else if (f.endsWith('.sources')) out.push(...parseDeb822Sources(text));
  }
  return out;
}

/** Where the guest's Debian packages come from: the host's mirrors for `suite` and its updates. */
export interface DebianMirrors {
  /** Serves `<suite>` (debootstrap's mirror). */
  main: string;
  /** `<suite>-updates` and `<suite>-security`, when the host uses them. */
  updates?: string;
  security?: string;
}

const trimSlash = (u: string) => u.replace(/\/+$/, '');

/** Picks the mirrors serving `suite` `main` from the host's sources; undefined when none does. */
export function debianMirrors(sources: AptSource[], suite: string): DebianMirrors | undefined {
  const find = (s: string) =>
    sources.find((src) => src.suites.includes(s) && src.components.includes('main'))?.uri;
  const main = find(suite);
  if (!main) return undefined;
  const updates = find(`${suite}-updates`);
  const security = find(`${suite}-security`);
  return {
    main: trimSlash(main),
    ...(updates ? { updates: trimSlash(updates) } : {}),
    ...(security ? { security: trimSlash(security) } : {}),
  };
}

/**
 * The prefix apt gives the index files of `uri` + `suite` under /var/lib/apt/lists
 * (apt's URItoFileName: scheme and credentials dropped, special characters %-quoted, `/` → `_`).
 */
export function listsPrefix(uri: string, suite: string): string {
  const noScheme = trimSlash(uri)
    .replace(/^[a-z0-9+.-]+:\/\//i, '')
    .replace(/^[^@/]*@/, '');
  const quoted = `${noScheme}/dists/${suite}/`.replace(
    /[\\|{}[\]<>"^~_=!@#$%&*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  return quoted.replaceAll('/', '_');
}

/** The suites the guest's apt uses, each with its mirror. */
export function guestSuites(m: DebianMirrors, suite: string): Array<{ uri: string; suite: string }> {
  return [
    { uri: m.main, suite },
    ...(m.updates ? [{ uri: m.updates, suite: `${suite}-updates` }] : []),
    ...(m.security ? [{ uri: m.security, suite: `${suite}-security` }] : []),
  ];
}

/** deb822 sources for the guest (main component only, signed by the Debian archive keyring). */
export function guestSourcesFile(m: DebianMirrors, suite: string): string {
  return guestSuites(m, suite)
    .map(
      (s) =>
        `Types: deb\nURIs: ${s.uri}\nSuites: ${s.suite}\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
    )
    .join('\n');
}
