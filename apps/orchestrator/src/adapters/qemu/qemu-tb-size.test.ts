import { describe, expect, it } from 'vitest';
import { tcgTbMibFor } from './qemu-driver.js';

describe('TCG translation cache size', () => {
  it('is what the image asks for unless the operator set QEMU_TCG_TB_MIB', () => {
    expect(tcgTbMibFor(undefined, 512)).toBe(512);
    expect(tcgTbMibFor(64, 512)).toBe(64);
  });

  it('is 32 MiB for images that do not say; the operator’s 0 keeps QEMU’s own default', () => {
    expect(tcgTbMibFor(undefined, undefined)).toBe(32);
    expect(tcgTbMibFor(0, 512)).toBe(0);
  });
});
