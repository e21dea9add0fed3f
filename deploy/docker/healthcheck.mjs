#!/usr/bin/env node
// Container health probe for deploy/docker-compose.yml (the images ship no curl):
//   node healthcheck.mjs <url> [timeoutMs]
// Exits 0 when GET <url> answers 2xx within timeoutMs (default 4000), 1 otherwise, 2 on bad usage.
const [url, timeoutArg] = process.argv.slice(2);
const timeoutMs = timeoutArg === undefined ? 4000 : Number(timeoutArg);
if (!url || !/^https?:\/\//.test(url) || !Number.isInteger(timeoutMs) || timeoutMs <= 0) {
  process.stderr.write('usage: healthcheck.mjs <http(s) url> [timeoutMs]\n');
  process.exit(2);
}
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  await res.body?.cancel();
  if (res.ok) process.exit(0);
  process.stderr.write(`${url}: HTTP ${res.status}\n`);
} catch (err) {
  process.stderr.write(`${url}: ${err instanceof Error ? err.message : String(err)}\n`);
}
process.exit(1);
