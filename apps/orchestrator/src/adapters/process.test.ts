import { describe, expect, it } from 'vitest';
import { rssMib } from './process.js';

describe('rssMib', () => {
  it("reads a live process's resident memory in MiB", async () => {
    const mib = await rssMib(process.pid);
    expect(mib).toBeGreaterThan(1);
    // Node itself: within a factor of two of what it reports.
    const own = process.memoryUsage().rss / 1024 / 1024;
    expect(mib).toBeGreaterThan(own / 2);
    expect(mib).toBeLessThan(own * 2);
  });

  it('is null for a process that does not exist or a bad pid', async () => {
    expect(await rssMib(4_194_304 + 7)).toBeNull();
    expect(await rssMib(0)).toBeNull();
    expect(await rssMib(-1)).toBeNull();
  });
});
