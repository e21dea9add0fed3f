import { describe, expect, it } from 'vitest';
import {
  debianMirrors,
  guestSourcesFile,
  listsPrefix,
  parseDeb822Sources,
  parseOneLineSources,
} from './apt-sources.js';

const DEB822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
`;

describe('apt sources of the host', () => {
  it('reads deb822 stanzas (Debian 12 default) and skips deb-src', () => {
    const sources = parseDeb822Sources(DEB822);
    expect(sources).toEqual([
      { uri: 'http://deb.debian.org/debian', suites: ['bookworm', 'bookworm-updates'], components: ['main'] },
      { uri: 'http://deb.debian.org/debian-security', suites: ['bookworm-security'], components: ['main'] },
    ]);
    expect(debianMirrors(sources, 'bookworm')).toEqual({
      main: 'http://deb.debian.org/debian',
      updates: 'http://deb.debian.org/debian',
      security: 'http://deb.debian.org/debian-security',
    });
  });

  it('reads one-line sources with options and ignores third-party suites', () => {
    const sources = parseOneLineSources(
      [
        '# comment',
        'deb [arch=amd64 signed-by=/k.gpg] https://packages.cloud.google.com/apt cloud-sdk-bookworm main',
        'deb http://mirror.example.org/debian/ bookworm main contrib',
        'deb-src http://mirror.example.org/debian bookworm main',
      ].join('\n'),
    );
    expect(debianMirrors(sources, 'bookworm')).toEqual({ main: 'http://mirror.example.org/debian' });
  });

  it('has no mirror when nothing serves the suite’s main component', () => {
    expect(
      debianMirrors(parseOneLineSources('deb http://x.example/debian bookworm contrib'), 'bookworm'),
    ).toBeUndefined();
  });

  it('names index files the way apt stores them', () => {
    expect(listsPrefix('http://deb.debian.org/debian/', 'bookworm')).toBe(
      'deb.debian.org_debian_dists_bookworm_',
    );
    expect(listsPrefix('https://user:pw@m.example:8080/deb', 'bookworm-security')).toBe(
      'm.example:8080_deb_dists_bookworm-security_',
    );
    expect(listsPrefix('http://m.example/~me/deb_x', 'bookworm')).toBe(
      'm.example_%7eme_deb%5fx_dists_bookworm_',
    );
  });

  it('writes the guest’s sources for main, updates and security', () => {
    const text = guestSourcesFile(
      { main: 'http://m/debian', updates: 'http://m/debian', security: 'http://m/debian-security' },
      'bookworm',
    );
    expect(parseDeb822Sources(text)).toEqual([
      { uri: 'http://m/debian', suites: ['bookworm'], components: ['main'] },
      { uri: 'http://m/debian', suites: ['bookworm-updates'], components: ['main'] },
      { uri: 'http://m/debian-security', suites: ['bookworm-security'], components: ['main'] },
    ]);
  });
});
