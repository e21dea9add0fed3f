import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { createLogger } from '@moltage/core';
import { freePort, type RedisServer, spawnService, startRedis, waitFor } from '@moltage/testkit';
import { Redis } from 'ioredis';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningSshGateway, runSshGateway } from './gateway.js';
import { type ClientTarget, clientOptions, runClient, writeAskpass } from './test-support/openssh.js';
import { startTestOrchestrator, type TestOrchestrator } from './test-support/orchestrator.js';
import { issuePassword, seedUser } from './test-support/seed.js';
import { createSshd, keygen, type TestSshd } from './test-support/sshd.js';

const execFileP = promisify(execFile);

const ALICE = 'oAlice_0123456789abcdefghijk';
const BOB = 'oBob_0123456789abcdefghijklm';

let dir: string;
let redisServer: RedisServer;
let redis: Redis;
let orch: TestOrchestrator;
let gw: RunningSshGateway;
let askpass: string;
let logs = '';
const vms = new Map<string, TestSshd>();
const keysOf: Record<string, { privatePath: string; publicKey: string }> = {};

function gatewayEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    LISTEN_ADDR: '127.0.0.1:0',
    METRICS_ADDR: '127.0.0.1:0',
    REDIS_URL: redisServer.url,
    ORCHESTRATOR_URL: orch.url,
    ORCHESTRATOR_TOKEN: orch.token,
    HOST_KEY_PATH: join(dir, 'gateway', 'host_key'),
    VM_SSH_USER: 'root',
    AUTH_FAIL_LIMIT_PER_IP: '1000',
    AUTH_FAIL_LIMIT_PER_USER: '1000',
    TOUCH_INTERVAL_S: '1',
    ...extra,
  };
}

function captureLogger() {
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs += chunk.toString();
      cb();
    },
  });
  return createLogger({ name: 'ssh-gateway', level: 'debug', destination: sink });
}

function target(t: Partial<ClientTarget> = {}): ClientTarget {
  return { port: gw.port, knownHosts: join(dir, 'known_hosts'), ...t };
}

function ssh(
  user: string,
  command: string,
  t: Partial<ClientTarget> & { password?: string; input?: string | Buffer; extra?: string[] } = {},
) {
  const { password, input, extra = [], ...rest } = t;
  return runClient('ssh', [...clientOptions(target(rest)), ...extra, `${user}@127.0.0.1`, command], {
    askpass,
    password,
    input,
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moltage-sshgw-'));
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  askpass = await writeAskpass(dir);
  keysOf[ALICE] = await keygen(join(dir, 'id_alice'), 'alice');
  keysOf[BOB] = await keygen(join(dir, 'id_bob'), 'bob');

  // The orchestrator must exist before the gateway (ORCHESTRATOR_URL); the sshds need the
  // gateway's upstream key, generated on the gateway's first start.
  orch = await startTestOrchestrator({ redis, token: randomBytes(16).toString('hex'), vms });
  gw = await runSshGateway({ env: gatewayEnv(), logger: captureLogger() });
  const upstreamPub = await readFile(join(dir, 'gateway', 'upstream_key.pub'), 'utf8');
  for (const [id, name] of [
    [ALICE, 'alice-vm'],
    [BOB, 'bob-vm'],
  ] as const) {
    const sshd = await createSshd({ name, dir: join(dir, name), authorizedKeys: [upstreamPub.trim()] });
    await sshd.start();
    vms.set(id, sshd);
    await orch.markRunning(id);
  }
  await seedUser(redis, ALICE, [keysOf[ALICE]!.publicKey]);
  await seedUser(redis, BOB, [keysOf[BOB]!.publicKey]);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  for (const v of vms.values()) await v.stop();
  await orch?.close();
  redis?.disconnect();
  await redisServer?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function startGateway(extra: Record<string, string>): Promise<RunningSshGateway> {
  return runSshGateway({ env: gatewayEnv(extra), logger: captureLogger() });
}

async function clearFailureCounters(): Promise<void> {
  const found = await redis.keys('sshfail:*');
  if (found.length > 0) await redis.del(...found);
}

/** Whether a process runs with exactly this command line (what `pgrep -fx` does, from /proc). */
function processWithCommandLine(commandLine: string): boolean {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim() === commandLine)
        return true;
    } catch {
      // the process ended meanwhile
    }
  }
  return false;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A TCP echo server on 127.0.0.1 (the service behind a -L forward). */
async function startEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createNetServer((sock) => sock.pipe(sock));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function echoThrough(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port }, () => sock.end(payload));
    const got: Buffer[] = [];
    sock.on('data', (d: Buffer) => got.push(d));
    sock.on('end', () => resolve(Buffer.concat(got)));
    sock.on('error', reject);
  });
}

describe('logins', () => {
  it('a registered key reaches the user own VM', async () => {
    const r = await ssh(ALICE, 'echo "vm=$MOLTAGE_VM user=$(id -un)"', {
      identity: keysOf[ALICE]!.privatePath,
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toBe('vm=alice-vm user=root\n');
    expect(r.code).toBe(0);
  });

  it.each([
    ['rsa', ['-t', 'rsa', '-b', '3072']],
    ['ecdsa', ['-t', 'ecdsa']],
  ])('accepts registered %s keys too', async (name, flags) => {
    const DAVE = 'oDave_0123456789abcdefghijkl';
    const path = join(dir, `id_${name}`);
    await execFileP('ssh-keygen', ['-q', ...flags, '-N', '', '-C', name, '-f', path]);
    await seedUser(redis, DAVE, [(await readFile(`${path}.pub`, 'utf8')).trim()]);
    vms.set(DAVE, vms.get(BOB)!);
    try {
      await orch.markRunning(DAVE);
      const r = await ssh(DAVE, 'echo ok', { identity: path });
      expect(r.stdout.toString()).toBe('ok\n');
    } finally {
      vms.delete(DAVE);
      await redis.del(`vm:${DAVE}`, `user:${DAVE}`, `sshhostkey:${DAVE}`);
    }
  });

  it('a one-time password works once and is gone afterwards', async () => {
    await issuePassword(redis, BOB, 'Pa55wordForBob');
    const first = await ssh(BOB, 'echo "vm=$MOLTAGE_VM"', { password: 'Pa55wordForBob' });
    expect(first.stdout.toString()).toBe('vm=bob-vm\n');
    expect(first.code).toBe(0);
    expect(await redis.exists(`sshotp:${BOB}`)).toBe(0);
    const again = await ssh(BOB, 'echo "vm=$MOLTAGE_VM"', { password: 'Pa55wordForBob' });
    expect(again.code).toBe(255);
    expect(again.stdout.toString()).toBe('');
  });

  it('lets exactly one of two simultaneous logins use a one-time password', async () => {
    await issuePassword(redis, BOB, 'RaceMePass4242');
    const results = await Promise.all([
      ssh(BOB, 'echo in', { password: 'RaceMePass4242' }),
      ssh(BOB, 'echo in', { password: 'RaceMePass4242' }),
      ssh(BOB, 'echo in', { password: 'RaceMePass4242' }),
    ]);
    expect(results.map((r) => r.code).sort()).toEqual([0, 255, 255]);
  });

  it('an expired one-time password is refused', async () => {
    await issuePassword(redis, BOB, 'ShortLivedPass1', 1);
    await waitFor(async () => (await redis.exists(`sshotp:${BOB}`)) === 0, {
      timeoutMs: 5000,
      what: 'OTP expiry',
    });
    const r = await ssh(BOB, 'true', { password: 'ShortLivedPass1' });
    expect(r.code).toBe(255);
  });

  it('refuses wrong, used and expired secrets, other users keys and unknown users identically', async () => {
    await issuePassword(redis, ALICE, 'AliceRealPass99');
    const cases = [
      ['wrong password', await ssh(ALICE, 'true', { password: 'not-the-password' })],
      [
        'password of another user',
        await (async () => {
          await issuePassword(redis, BOB, 'BobsOwnPass123');
          return ssh(ALICE, 'true', { password: 'BobsOwnPass123' });
        })(),
      ],
      [
        'unknown user, password',
        await ssh('oUnknown_0123456789abcdefgh', 'true', { password: 'AliceRealPass99' }),
      ],
      ['invalid user name', await ssh('no such user!', 'true', { password: 'AliceRealPass99' })],
      ['other user key', await ssh(ALICE, 'true', { identity: keysOf[BOB]!.privatePath })],
      [
        'unknown user, key',
        await ssh('oUnknown_0123456789abcdefgh', 'true', { identity: keysOf[ALICE]!.privatePath }),
      ],
    ] as const;
    for (const [what, r] of cases) {
      expect({ what, code: r.code, stdout: r.stdout.toString() }).toEqual({ what, code: 255, stdout: '' });
      // The same refusal text, whoever asked (only the echoed login name differs).
      expect({ what, stderr: r.stderr.replace(/^.*?@127\.0\.0\.1: /, '') }).toEqual({
        what,
        stderr: 'Permission denied (publickey,password).\r\n',
      });
    }
    // Alice's password was not burnt by the failures and still works once.
    const ok = await ssh(ALICE, 'echo "$MOLTAGE_VM"', { password: 'AliceRealPass99' });
    expect(ok.stdout.toString()).toBe('alice-vm\n');
    // Failures are logged with the source and the user, never with the secret.
    expect(logs).toContain('"msg":"login failed"');
    expect(logs).toContain(`"openid":"${ALICE}"`);
    expect(logs).not.toContain('not-the-password');
    expect(logs).not.toContain('AliceRealPass99');
    expect(logs).not.toContain('BobsOwnPass123');
  });

  it('refuses users who unfollowed the Official Account', async () => {
    const original = (await redis.get(`user:${BOB}`))!;
    await redis.set(`user:${BOB}`, JSON.stringify({ ...JSON.parse(original), subscribed: false }));
    try {
      await issuePassword(redis, BOB, 'BobLeftPass123');
      expect((await ssh(BOB, 'true', { identity: keysOf[BOB]!.privatePath })).code).toBe(255);
      expect((await ssh(BOB, 'true', { password: 'BobLeftPass123' })).code).toBe(255);
    } finally {
      await redis.set(`user:${BOB}`, original);
      await redis.del(`sshotp:${BOB}`);
    }
    expect((await ssh(BOB, 'true', { identity: keysOf[BOB]!.privatePath })).code).toBe(0);
  });

  it('user A never reaches user B VM, even when A record points at B VM', async () => {
    // A's key and A's password only ever log in as A.
    await issuePassword(redis, ALICE, 'AlicePassForB1');
    expect((await ssh(BOB, 'echo "$MOLTAGE_VM"', { identity: keysOf[ALICE]!.privatePath })).code).toBe(255);
    expect((await ssh(BOB, 'echo "$MOLTAGE_VM"', { password: 'AlicePassForB1' })).code).toBe(255);

    // Alice's VM host key is pinned by now; a record that sends her to another VM (an address
    // reused by someone else's VM) is refused because that VM's host key differs.
    expect((await ssh(ALICE, 'true', { identity: keysOf[ALICE]!.privatePath })).code).toBe(0);
    expect(await redis.get(`sshhostkey:${ALICE}`)).toContain('sha256');
    const original = (await redis.get(`vm:${ALICE}`))!;
    const hijacked = JSON.parse(original) as { ssh: { port: number } };
    hijacked.ssh.port = vms.get(BOB)!.port;
    await redis.set(`vm:${ALICE}`, JSON.stringify(hijacked));
    try {
      const r = await ssh(ALICE, 'echo "$MOLTAGE_VM"', { identity: keysOf[ALICE]!.privatePath });
      expect(r.stdout.toString()).not.toContain('bob-vm');
      expect(r.code).toBe(255);
      expect(r.stderr).toContain("Your VM's identity could not be verified");
      expect(logs).toContain('VM host key does not match the pinned key');
    } finally {
      await redis.set(`vm:${ALICE}`, original);
    }
  });
});

describe('sessions', () => {
  const asAlice = () => ({ identity: keysOf[ALICE]!.privatePath });

  it('exec relays stdin, stdout, stderr and the exit code', async () => {
    const r = await ssh(ALICE, 'cat; echo "to stderr" >&2; exit 7', {
      ...asAlice(),
      input: 'hello from stdin\n',
    });
    expect(r.stdout.toString()).toBe('hello from stdin\n');
    expect(r.stderr).toBe('to stderr\n');
    expect(r.code).toBe(7);
  });

  it('a remote process killed by a signal ends the client like sshd does', async () => {
    const direct = await runClient('ssh', [
      ...clientOptions({
        port: vms.get(ALICE)!.port,
        knownHosts: join(dir, 'known_hosts_direct'),
        identity: join(dir, 'gateway', 'upstream_key'),
      }),
      'root@127.0.0.1',
      'kill -TERM $$',
    ]);
    const viaGateway = await ssh(ALICE, 'kill -TERM $$', asAlice());
    expect(viaGateway.code).toBe(direct.code);
    expect(viaGateway.stderr).toBe(direct.stderr);
  });

  it('relays signal requests to the VM and exit signals back', async () => {
    // OpenSSH's client cannot send signal requests; ssh2's client can.
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', reject);
      client.connect({
        host: '127.0.0.1',
        port: gw.port,
        username: ALICE,
        privateKey: readFileSync(keysOf[ALICE]!.privatePath),
      });
    });
    const exec = (command: string, onData: (ch: ssh2.ClientChannel) => void = () => {}) =>
      new Promise<unknown[]>((resolve, reject) => {
        client.exec(command, (err, ch) => {
          if (err) return reject(err);
          ch.on('data', () => onData(ch));
          ch.stderr.resume();
          ch.on('exit', (...a: unknown[]) => resolve(a));
        });
      });
    try {
      // The exit signal of a killed process reaches the client as exit-signal, not as a status.
      expect((await exec('kill -TERM $$')).slice(0, 2)).toEqual([null, 'SIGTERM']);
      // The signal request reaches the VM's sshd (this sshd declines to deliver signals to
      // root sessions, which it logs; a guest's sshd for its unprivileged user delivers them).
      await exec('echo started; sleep 2', (ch) => ch.signal('INT'));
      await waitFor(() => vms.get(ALICE)!.output().includes('session_signal_req'), {
        what: 'the signal request in the VM sshd log',
      });
    } finally {
      client.end();
    }
  });

  it('an interactive shell with a pty runs and reports its exit status', async () => {
    const r = await ssh(ALICE, '', {
      ...asAlice(),
      extra: ['-tt'],
      input: 'echo "shell on $MOLTAGE_VM tty=$(tty | cut -c1-9)"; exit 5\n',
    });
    expect(r.stdout.toString()).toContain('shell on alice-vm tty=/dev/pts/');
    expect(r.code).toBe(5);
  });

  it('terminal size changes reach the VM', async () => {
    const opts = clientOptions(target(asAlice()))
      .map((a) => `'${a}'`)
      .join(' ');
    const inner = `stty rows 30 cols 100; exec ssh ${opts} -tt ${ALICE}@127.0.0.1 'stty size; while read l; do stty size; done'`;
    const child = spawn('script', ['-q', '-e', '-c', inner, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    try {
      await waitFor(() => out.includes('30 100'), { timeoutMs: 15_000, what: 'initial size' });
      const ssh = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)[0];
      const tty = readlinkSync(`/proc/${ssh}/fd/0`);
      await execFileP('stty', ['-F', tty, 'rows', '40', 'cols', '120']);
      await waitFor(
        () => {
          child.stdin.write('\n');
          return out.includes('40 120');
        },
        { timeoutMs: 15_000, intervalMs: 200, what: 'resized terminal' },
      );
    } finally {
      child.kill('SIGKILL');
    }
    expect(out).toContain('40 120');
  });

  it('agent forwarding is refused', async () => {
    const agentSock = join(dir, 'agent.sock');
    const agent = spawnService('ssh-agent', ['-D', '-a', agentSock]);
    try {
      await waitFor(() => existsSync(agentSock), { timeoutMs: 5000, what: 'ssh-agent socket' });
      const opts = clientOptions(target(asAlice())).map((a) =>
        a === 'IdentityAgent=none' ? `IdentityAgent=${agentSock}` : a,
      );
      const r = await runClient('ssh', [
        ...opts,
        '-o',
        'ForwardAgent=yes',
        `${ALICE}@127.0.0.1`,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion for the remote side
        'echo "agent=${SSH_AUTH_SOCK:-none}"',
      ]);
      expect(r.stdout.toString()).toBe('agent=none\n');
      expect(r.code).toBe(0);
    } finally {
      await agent.stop();
    }
  });

  it('closing the client ends the VM session', async () => {
    const marker = `sleep ${300 + Math.floor(Math.random() * 600)}`;
    const client = spawn('ssh', [...clientOptions(target(asAlice())), '-tt', `${ALICE}@127.0.0.1`, marker], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const running = () => processWithCommandLine(marker);
    try {
      await waitFor(running, { timeoutMs: 15_000, what: 'remote command' });
    } finally {
      client.kill('SIGKILL');
    }
    await waitFor(() => !running(), { timeoutMs: 15_000, what: 'remote command to end' });
  });

  it('an open connection keeps its VM marked active', async () => {
    const before = orch.touches.get(ALICE) ?? 0;
    const r = await ssh(ALICE, 'sleep 2.5; echo done', asAlice());
    expect(r.stdout.toString()).toBe('done\n');
    expect(orch.touches.get(ALICE) ?? 0).toBeGreaterThan(before);
    expect(orch.requests.every((q) => q.authorized)).toBe(true);
  });
});

describe('files and forwarding', () => {
  const asAlice = () => ({ identity: keysOf[ALICE]!.privatePath });
  let data: Buffer;
  let src: string;

  beforeAll(async () => {
    data = randomBytes(10 * 1024 * 1024);
    src = join(dir, 'ten-mb.bin');
    await writeFile(src, data);
  });

  it('sftp moves 10 MB up and down intact', async () => {
    const remote = join(dir, 'alice-vm', 'sftp-upload.bin');
    const back = join(dir, 'sftp-download.bin');
    const batch = join(dir, 'sftp.batch');
    await writeFile(batch, `put ${src} ${remote}\nget ${remote} ${back}\n`);
    const r = await runClient(
      'sftp',
      [...clientOptions(target(asAlice())), '-b', batch, `${ALICE}@127.0.0.1`],
      {
        timeoutMs: 60_000,
      },
    );
    expect(r.code).toBe(0);
    expect(sha256(await readFile(remote))).toBe(sha256(data));
    expect(sha256(await readFile(back))).toBe(sha256(data));
  });

  it.each([
    ['scp (SFTP protocol)', []],
    ['scp -O (legacy protocol over exec)', ['-O']],
  ])('%s copies 10 MB up and down intact', async (_name, flags) => {
    const tag = flags.length ? 'legacy' : 'sftp';
    const remote = join(dir, 'alice-vm', `scp-${tag}.bin`);
    const back = join(dir, `scp-${tag}-back.bin`);
    const o = clientOptions(target(asAlice()));
    const up = await runClient('scp', [...o, ...flags, src, `${ALICE}@127.0.0.1:${remote}`], {
      timeoutMs: 60_000,
    });
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const down = await runClient('scp', [...o, ...flags, `${ALICE}@127.0.0.1:${remote}`, back], {
      timeoutMs: 60_000,
    });
    expect(down.code).toBe(0);
    expect(sha256(await readFile(remote))).toBe(sha256(data));
    expect(sha256(await readFile(back))).toBe(sha256(data));
  });

  it('-L forwards a local port to a service the VM can reach', async () => {
    const echo = await startEcho();
    const localPort = await freePort();
    const client = spawnService('ssh', [
      ...clientOptions(target(asAlice())),
      '-N',
      '-o',
      'ExitOnForwardFailure=yes',
      '-L',
      `127.0.0.1:${localPort}:127.0.0.1:${echo.port}`,
      `${ALICE}@127.0.0.1`,
    ]);
    try {
      const payload = randomBytes(3 * 1024 * 1024);
      let got: Buffer | undefined;
      await waitFor(
        async () => {
          got = await echoThrough(localPort, Buffer.from('ping')).catch(() => undefined);
          return got?.toString() === 'ping';
        },
        { timeoutMs: 15_000, what: 'the forwarded port' },
      );
      const [a, b] = await Promise.all([echoThrough(localPort, payload), echoThrough(localPort, payload)]);
      expect(sha256(a)).toBe(sha256(payload));
      expect(sha256(b)).toBe(sha256(payload));
    } finally {
      await client.stop();
      await echo.close();
    }
  });
});

describe('VM lifecycle and gateway restarts', () => {
  const asAlice = () => ({ identity: keysOf[ALICE]!.privatePath });

  it('starts a stopped VM on login and tells the user while it boots', async () => {
    await orch.markStopped(ALICE);
    expect(vms.get(ALICE)!.running()).toBe(false);
    const r = await ssh(ALICE, 'echo "vm=$MOLTAGE_VM"', asAlice());
    expect(r.stderr).toContain('starting your VM');
    expect(r.stdout.toString()).toBe('vm=alice-vm\n');
    expect(r.code).toBe(0);
    expect(vms.get(ALICE)!.running()).toBe(true);
    expect(orch.requests).toContainEqual({ method: 'POST', path: '/api/v1/vms', authorized: true });
    expect(JSON.parse((await redis.get(`vm:${ALICE}`))!).state).toBe('running');
  });

  it('says so when the VM cannot be started', async () => {
    const CAROL = 'oCarol_0123456789abcdefghij';
    await seedUser(redis, CAROL, [keysOf[ALICE]!.publicKey]);
    const r = await ssh(CAROL, 'echo hi', asAlice());
    expect(r.stdout.toString()).toBe('');
    expect(r.stderr).toContain('moltage: No VM capacity is available right now');
    expect(r.code).toBe(255);
  });

  it('keeps its host key across restarts (known_hosts stays valid)', async () => {
    const hostKeyPath = join(dir, 'gateway', 'host_key');
    const before = await readFile(hostKeyPath, 'utf8');
    expect((await ssh(ALICE, 'true', asAlice())).code).toBe(0);
    const port = gw.port;
    await gw.close();
    gw = await startGateway({ LISTEN_ADDR: `127.0.0.1:${port}` });
    expect(await readFile(hostKeyPath, 'utf8')).toBe(before);
    const r = await ssh(ALICE, 'echo "$MOLTAGE_VM"', { ...asAlice(), strict: 'yes' });
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toBe('alice-vm\n');
  });

  it('serves health and Prometheus metrics', async () => {
    expect((await ssh(ALICE, 'head -c 100000 /dev/zero', asAlice())).stdout.length).toBe(100_000);
    const health = await fetch(`${gw.statusUrl}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', redis: 'ok' });
    const text = await (await fetch(`${gw.statusUrl}/metrics`)).text();
    expect(text).toMatch(/moltage_ssh_auth_success_total\{method="publickey"\} [1-9]/);
    expect(text).toMatch(/moltage_ssh_bytes_total\{direction="to_client"\} \d{6,}/);
    expect(text).toContain('moltage_ssh_auth_failures_total');
    expect(text).toContain('moltage_ssh_sessions');
    expect((await fetch(`${gw.statusUrl}/nope`)).status).toBe(404);
  });
});

describe('limits', () => {
  it('refuses every login as a user after too many failures for that user', async () => {
    await clearFailureCounters();
    const limited = await startGateway({ AUTH_FAIL_LIMIT_PER_USER: '3' });
    try {
      const t = { port: limited.port };
      await issuePassword(redis, ALICE, 'RightPassword12');
      for (let i = 0; i < 3; i++)
        expect((await ssh(ALICE, 'true', { ...t, password: `wrong-${i}` })).code).toBe(255);
      const blocked = await ssh(ALICE, 'true', { ...t, password: 'RightPassword12' });
      expect(blocked.code).toBe(255);
      expect(blocked.stderr).toContain('Permission denied (publickey,password)');
      expect(await redis.exists(`sshotp:${ALICE}`)).toBe(1);
      // Other users are not affected.
      expect((await ssh(BOB, 'true', { ...t, identity: keysOf[BOB]!.privatePath })).code).toBe(0);
      expect(logs).toContain('login refused: too many failed logins');
    } finally {
      await limited.close();
      await clearFailureCounters();
      await redis.del(`sshotp:${ALICE}`);
    }
  });

  it('refuses every login from an address after too many failures from it', async () => {
    await clearFailureCounters();
    const limited = await startGateway({ AUTH_FAIL_LIMIT_PER_IP: '3' });
    try {
      const t = { port: limited.port };
      for (let i = 0; i < 3; i++) {
        expect(
          (await ssh(`oNobody${i}_0123456789abcdefghij`, 'true', { ...t, password: 'guess' })).code,
        ).toBe(255);
      }
      expect((await ssh(BOB, 'true', { ...t, identity: keysOf[BOB]!.privatePath })).code).toBe(255);
    } finally {
      await limited.close();
      await clearFailureCounters();
    }
  });

  it('closes connections that stay idle', async () => {
    const idle = await startGateway({ IDLE_TIMEOUT_S: '1' });
    try {
      const r = await ssh(ALICE, 'sleep 20; echo done', {
        port: idle.port,
        identity: keysOf[ALICE]!.privatePath,
      });
      expect(r.stdout.toString()).toBe('');
      expect(r.stderr).toContain('closing the connection after a long time without activity');
      expect(r.code).toBe(255);
    } finally {
      await idle.close();
    }
  });
});
