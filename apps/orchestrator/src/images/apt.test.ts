import { describe, expect, it } from 'vitest';
import { parseAptShow } from './apt.js';

describe('apt-cache show parsing', () => {
  it('takes name, version and checksum of each stanza', () => {
    const text = `Package: busybox-static\nVersion: 1:1.35.0-4+deb12u1+b1\nSHA256: aa11\nDescription: x\n\nPackage: zlib1g\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\nSHA256: bb22\n`;
    expect(parseAptShow(text)).toEqual([
      { name: 'busybox-static', version: '1:1.35.0-4+deb12u1+b1', sha256: 'aa11' },
      { name: 'zlib1g', version: '1:1.2.13.dfsg-1', sha256: 'bb22' },
    ]);
  });
});
