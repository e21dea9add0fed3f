import type { Logger } from '@moltage/core';
import ssh2, { type Client } from 'ssh2';
import { checkHostKey, hostKeySha256 } from '../domain/host-key-pin.js';
import type { HostKeyPins } from '../domain/ports.js';
import type { UpstreamTarget } from '../domain/route.js';
import { GatewayError } from '../errors.js';

export interface UpstreamOptions {
  pins: HostKeyPins;
  logger: Logger;
  /** TCP connect + handshake + login. */
  timeoutMs: number;
  keepaliveIntervalMs?: number;
}

/**
 * Logs in to a VM's sshd as `target.username` with the gateway key (then, only if the key is
 * refused, the legacy password), verifying the VM's host key against the pin kept for `openid`
 * (trust on first use per VM record, see domain/host-key-pin.ts).
 */
export function connectUpstream(
  openid: string,
  target: UpstreamTarget,
  opts: UpstreamOptions,
): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let hostKeyProblem: GatewayError | undefined;
    let settled = false;
    const fail = (err: GatewayError) => {
      if (settled) return;
      settled = true;
      client.removeAllListeners('ready');
      client.on('error', () => {});
      client.end();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new GatewayError(
            'SSHGW_VM_UNREACHABLE',
            `VM ssh ${target.host}:${target.port} did not answer in ${opts.timeoutMs} ms`,
            {
              userMessage: 'Your VM is not answering on SSH. Please try again in a minute.',
            },
          ),
        ),
      opts.timeoutMs,
    );

    client.once('ready', () => {
      clearTimeout(timer);
      if (settled) {
        client.end();
        return;
      }
      settled = true;
      client.on('error', (err) =>
        opts.logger.debug({ err: err.message, openid }, 'upstream connection error'),
      );
      resolve(client);
    });
    client.on('error', (err: Error & { level?: string }) => {
      clearTimeout(timer);
      if (hostKeyProblem) return fail(hostKeyProblem);
      if (err.level === 'client-authentication') {
        return fail(
          new GatewayError(
            'SSHGW_VM_AUTH_FAILED',
            `VM sshd refused the gateway's login as ${target.username}`,
            {
              cause: err,
              userMessage: 'Your VM refused the gateway. Please contact the operator.',
            },
          ),
        );
      }
      fail(
        new GatewayError('SSHGW_VM_UNREACHABLE', `VM ssh ${target.host}:${target.port}: ${err.message}`, {
          cause: err,
          userMessage: 'Your VM is not answering on SSH. Please try again in a minute.',
        }),
      );
    });
    client.on('close', () => {
      clearTimeout(timer);
      fail(
        hostKeyProblem ??
          new GatewayError(
            'SSHGW_VM_UNREACHABLE',
            `VM ssh ${target.host}:${target.port} closed the connection`,
            {
              userMessage: 'Your VM is not answering on SSH. Please try again in a minute.',
            },
          ),
      );
    });

    const authHandler: ('publickey' | 'password')[] = ['publickey'];
    if (target.auth.password !== undefined) authHandler.push('password');

    client.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.auth.privateKey,
      password: target.auth.password,
      authHandler,
      readyTimeout: opts.timeoutMs,
      keepaliveInterval: opts.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
        const presented = hostKeySha256(key);
        opts.pins
          .get(openid)
          .then(async (pin) => {
            const verdict = checkHostKey(pin, presented, target.vmCreatedAt, new Date());
            if (verdict.kind === 'match') return verify(true);
            if (verdict.kind === 'pin') {
              await opts.pins.set(openid, verdict.pin);
              opts.logger.info(
                { openid, hostKey: `SHA256:${presented}`, replaces: verdict.replaces?.sha256 ?? null },
                verdict.replaces
                  ? 'VM record is new: pinned its host key again'
                  : 'pinned VM host key on first use',
              );
              return verify(true);
            }
            opts.logger.error(
              {
                openid,
                expected: `SHA256:${verdict.expected}`,
                presented: `SHA256:${verdict.presented}`,
                host: target.host,
                port: target.port,
              },
              'VM host key does not match the pinned key: refusing to connect',
            );
            hostKeyProblem = new GatewayError(
              'SSHGW_VM_HOST_KEY_MISMATCH',
              `host key of ${target.host}:${target.port} is SHA256:${presented}, pinned SHA256:${verdict.expected}`,
              { userMessage: "Your VM's identity could not be verified. The operator has been notified." },
            );
            verify(false);
          })
          .catch((err: unknown) => {
            hostKeyProblem =
              err instanceof GatewayError
                ? err
                : new GatewayError('SSHGW_REDIS', `host key check failed: ${(err as Error).message}`, {
                    cause: err,
                  });
            verify(false);
          });
      },
    });
    // No Nagle on the relay's VM leg either (see app.ts). `connect` has just created the socket;
    // Node applies the option when the socket gets its handle.
    client.setNoDelay(true);
  });
}
