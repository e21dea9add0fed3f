import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type ChildService, spawnService, waitFor } from '@moltage/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { killVms, type Sandbox, sandbox, TEST_IMAGE_DIR, tinyImage } from './test/helpers.js';

const exec = promisify(execFile);
const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const TOKEN = 'tap-token-0123456789abcdef';

/**
 * TAP networking, entirely inside a network namespace this test creates and deletes: the
 * orchestrator, its Redis, the bridge, TAPs, nftables rules, the VMs and a stand-in for the
 * bridge's callback all live there. Nothing is sent from the host's own namespace.
 */
describe('tap networking (inside a test network namespace)', () => {
  let ns: string | undefined;
  let box: Sandbox | undefined;
  const children: ChildService[] = [];

  beforeAll(async () => {
    await exec('npx', ['tsc', '-b', pkgDir], { cwd: pkgDir, timeout: 240_000 });
    await tinyImage();
  }, 600_000);

  afterEach(async () => {
    for (const c of children.reverse()) await c.stop('SIGTERM', 30_000).catch(() => {});
    children.length = 0;
    if (box) await killVms(box.socketDir);
    if (ns) await exec('ip', ['netns', 'del', ns]).catch(() => {});
    await box?.cleanup();
    ns = undefined;
    box = undefined;
  }, 120_000);

  const inNs = (cmd: string, args: string[], timeout = 30_000) =>
    exec('ip', ['netns', 'exec', ns!, cmd, ...args], { timeout }).then((r) => r.stdout);

  function spawnInNs(cmd: string, args: string[], env?: NodeJS.ProcessEnv) {
    const c = spawnService('ip', ['netns', 'exec', ns!, cmd, ...args], { env });
    children.push(c);
    return c;
  }

  async function api(method: string, path: string, body?: unknown) {
    const args = ['-s', '-X', method, '-H', `authorization: Bearer ${TOKEN}`, '-w', '\n%{http_code}'];
    if (body) args.push('-H', 'content-type: application/json', '-d', JSON.stringify(body));
    const out = await inNs('curl', [...args, `http://127.0.0.1:8080${path}`], 120_000);
    const nl = out.lastIndexOf('\n');
    const text = out.slice(0, nl);
    return { status: Number(out.slice(nl + 1)), body: text ? JSON.parse(text) : null };
  }

  const guest = (key: string, ip: string, command: string) =>
    inNs('ssh', [
      '-i',
      key,
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=ERROR',
      '-o',
      'ConnectTimeout=10',
      `user@${ip}`,
      command,
    ]);

  it('isolates VMs from each other and from host ports other than the callback', async () => {
    const id = randomBytes(3).toString('hex');
    ns = `moltage-t${id}`;
    box = await sandbox();
    await exec('ip', ['netns', 'add', ns]);
    await inNs('ip', ['link', 'set', 'lo', 'up']);
    const subnet = `10.${77 + (parseInt(id.slice(0, 2), 16) % 50)}.${parseInt(id.slice(2, 4), 16)}.0/24`;
    const prefix = subnet.replace(/\.0\/24$/, '');
    const gateway = `${prefix}.1`;

    const redis = spawnInNs('redis-server', [
      '--port',
      '6390',
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
    ]);
    await redis.waitForOutput(/Ready to accept connections/, 20_000);

    const orch = spawnInNs('node', [mainJs], {
      ...process.env,
      PORT: '8080',
      HOST: '127.0.0.1',
      REDIS_URL: 'redis://127.0.0.1:6390',
      ORCHESTRATOR_TOKEN: TOKEN,
      VM_DRIVER: 'qemu',
      VM_IMAGE: 'tiny',
      VM_IMAGE_DIR: TEST_IMAGE_DIR,
      VM_NETWORK: 'tap',
      BRIDGE_NAME: `mtbr${id}`,
      VM_SUBNET: subnet,
      GATEWAY_IP: gateway,
      CALLBACK_PORT: '3000',
      VM_DATA_DIR: box.dataDir,
      SOCKET_DIR: box.socketDir,
      DEFAULT_MEM_MIB: '128',
      VM_DATA_DISK_MIB: '256',
      GATEWAY_SSH_PUBKEY_PATH: box.pubKeyPath,
      VM_READY_TIMEOUT_MS: '60000',
    });
    await orch.waitForOutput(/Server listening/, 60_000);

    // Stand-ins for the bridge's callback (allowed) and another host service (blocked).
    const serve = (port: number, text: string) =>
      spawnInNs('node', [
        '-e',
        `require('http').createServer((q,r)=>r.end('${text}')).listen(${port},'${gateway}',()=>console.log('up'))`,
      ]);
    await serve(3000, 'callback-ok').waitForOutput(/up/);
    await serve(3001, 'other-service').waitForOutput(/up/);

    const a = await api('POST', '/api/v1/vms', {
      user_id: 'alice',
      callback_url: `http://${gateway}:3000/callback`,
    });
    const b = await api('POST', '/api/v1/vms', { user_id: 'bob' });
    expect(a).toMatchObject({
      status: 200,
      body: { state: 'running', ip: `${prefix}.2`, ssh: { host: `${prefix}.2`, port: 22 } },
    });
    expect(b).toMatchObject({ status: 200, body: { state: 'running', ip: `${prefix}.3` } });
    const taps = (await inNs('ip', ['-o', 'link', 'show'])).match(/ mt[0-9a-f]{10}[:@]/g) ?? [];
    expect(taps).toHaveLength(2);

    // From alice's VM (busybox nc; the static busybox wget cannot run as a user): the
    // callback answers, no other host port does, and bob's VM is unreachable.
    const http = (host: string, port: number) =>
      `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port} | tail -n 1; echo; echo end`;
    expect((await guest(box.keyPath, a.body.ip, http(gateway, 3000))).trim().split('\n')).toEqual([
      'callback-ok',
      'end',
    ]);
    expect((await guest(box.keyPath, a.body.ip, http(gateway, 3001))).trim()).toBe('end');
    const toBob = await guest(
      box.keyPath,
      a.body.ip,
      `nc -w 3 ${b.body.ip} 22 </dev/null | head -c 4; echo end`,
    );
    expect(toBob.trim()).toBe('end');
    // Bob's sshd does answer from the host side of the bridge.
    expect((await guest(box.keyPath, b.body.ip, 'echo ok')).trim()).toBe('ok');

    // Deleting a VM removes its TAP.
    expect((await api('DELETE', '/api/v1/vms/bob')).status).toBe(204);
    await waitFor(
      async () =>
        ((await inNs('ip', ['-o', 'link', 'show'])).match(/ mt[0-9a-f]{10}[:@]/g) ?? []).length === 1,
      {
        timeoutMs: 10_000,
        what: "bob's TAP to disappear",
      },
    );
  }, 300_000);

  it('lets the machines in VM_INGRESS_FROM reach guests (other hosts’ bridges and gateways), nobody else', async () => {
    const id = randomBytes(3).toString('hex');
    ns = `moltage-t${id}`;
    box = await sandbox();
    const peers = [`${ns}-a`, `${ns}-b`];
    await exec('ip', ['netns', 'add', ns]);
    try {
      for (const p of peers) await exec('ip', ['netns', 'add', p]);
      await inNs('ip', ['link', 'set', 'lo', 'up']);
      const subnet = `10.${77 + (parseInt(id.slice(0, 2), 16) % 50)}.${parseInt(id.slice(2, 4), 16)}.0/24`;
      const prefix = subnet.replace(/\.0\/24$/, '');
      // Two other machines (TEST-NET-1 addresses, only inside these namespaces), each on a veth
      // link to the orchestrator's namespace, routing the VM subnet through it.
      for (const [i, p] of peers.entries()) {
        const [here, there] = [`192.0.2.${4 * i + 1}`, `192.0.2.${4 * i + 2}`];
        await exec('ip', [
          'link',
          'add',
          `vp${id}${i}`,
          'netns',
          ns,
          'type',
          'veth',
          'peer',
          'name',
          'eth0',
          'netns',
          p,
        ]);
        await inNs('ip', ['addr', 'add', `${here}/30`, 'dev', `vp${id}${i}`]);
        await inNs('ip', ['link', 'set', `vp${id}${i}`, 'up']);
        await exec('ip', ['netns', 'exec', p, 'ip', 'addr', 'add', `${there}/30`, 'dev', 'eth0']);
        await exec('ip', ['netns', 'exec', p, 'ip', 'link', 'set', 'eth0', 'up']);
        await exec('ip', ['netns', 'exec', p, 'ip', 'route', 'add', subnet, 'via', here]);
      }
      const redis = spawnInNs('redis-server', [
        '--port',
        '6390',
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
      ]);
      await redis.waitForOutput(/Ready to accept connections/, 20_000);
      const orch = spawnInNs('node', [mainJs], {
        ...process.env,
        PORT: '8080',
        HOST: '127.0.0.1',
        REDIS_URL: 'redis://127.0.0.1:6390',
        ORCHESTRATOR_TOKEN: TOKEN,
        VM_DRIVER: 'qemu',
        VM_IMAGE: 'tiny',
        VM_IMAGE_DIR: TEST_IMAGE_DIR,
        VM_NETWORK: 'tap',
        BRIDGE_NAME: `mtbr${id}`,
        VM_SUBNET: subnet,
        GATEWAY_IP: `${prefix}.1`,
        VM_INGRESS_FROM: '192.0.2.2',
        VM_DATA_DIR: box.dataDir,
        SOCKET_DIR: box.socketDir,
        DEFAULT_MEM_MIB: '128',
        VM_DATA_DISK_MIB: '256',
        GATEWAY_SSH_PUBKEY_PATH: box.pubKeyPath,
        VM_READY_TIMEOUT_MS: '60000',
      });
      await orch.waitForOutput(/Server listening/, 60_000);
      const vm = await api('POST', '/api/v1/vms', { user_id: 'carol' });
      expect(vm).toMatchObject({ status: 200, body: { state: 'running', ip: `${prefix}.2` } });
      // The first bytes the guest's sshd sends to a TCP client in `peer` ('' when none arrive).
      const banner = (peer: string) =>
        exec(
          'ip',
          [
            'netns',
            'exec',
            peer,
            process.execPath,
            '-e',
            `const s=require('net').connect(22,'${vm.body.ip}');let b='';` +
              `const end=()=>{process.stdout.write(b.slice(0,4)+'end');process.exit(0)};` +
              `s.setTimeout(3000,end);s.on('data',d=>{b+=d;if(b.length>=4)end()});s.on('error',end);s.on('close',end);`,
          ],
          { timeout: 30_000 },
        ).then((r) => r.stdout.trim());
      expect(await banner(peers[0]!)).toBe('SSH-end');
      expect(await banner(peers[1]!)).toBe('end');
    } finally {
      for (const p of peers) await exec('ip', ['netns', 'del', p]).catch(() => {});
    }
  }, 300_000);
});
