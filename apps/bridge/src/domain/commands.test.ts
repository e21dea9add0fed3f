import { describe, expect, it } from 'vitest';
import { parseCommand } from './commands.js';

describe('parseCommand', () => {
  it('recognises the commands without arguments, case-insensitively and with a leading slash', () => {
    expect(parseCommand('help')).toEqual({ name: 'help' });
    expect(parseCommand('  HELP ')).toEqual({ name: 'help' });
    expect(parseCommand('/Status')).toEqual({ name: 'status' });
    expect(parseCommand('帮助')).toEqual({ name: 'help' });
    expect(parseCommand('unbind')).toEqual({ name: 'unbind' });
    expect(parseCommand('SSH')).toEqual({ name: 'ssh' });
    expect(parseCommand('Reset')).toEqual({ name: 'reset' });
  });

  it('sends sentences that merely start with a command word to the agent', () => {
    expect(parseCommand('help me write a poem')).toBeNull();
    expect(parseCommand('status of the project?')).toBeNull();
    expect(parseCommand('ssh 是什么')).toBeNull();
    expect(parseCommand('你好')).toBeNull();
    expect(parseCommand('   ')).toBeNull();
  });

  it('parses bind with exactly a URL and a token', () => {
    expect(parseCommand('bind https://a.example/webhook s3cret')).toEqual({
      name: 'bind',
      url: 'https://a.example/webhook',
      token: 's3cret',
    });
    expect(parseCommand('BIND  http://x.example   t')).toEqual({
      name: 'bind',
      url: 'http://x.example',
      token: 't',
    });
    expect(parseCommand('bind')).toEqual({ name: 'bind-usage' });
    expect(parseCommand('bind https://a.example')).toEqual({ name: 'bind-usage' });
    expect(parseCommand('bind a b c')).toEqual({ name: 'bind-usage' });
  });

  it('parses sshkey add, clear and list', () => {
    expect(parseCommand('sshkey ssh-ed25519 AAAA me@laptop')).toEqual({
      name: 'sshkey-add',
      key: 'ssh-ed25519 AAAA me@laptop',
    });
    expect(parseCommand('SSHKEY clear')).toEqual({ name: 'sshkey-clear' });
    expect(parseCommand('sshkey CLEAR')).toEqual({ name: 'sshkey-clear' });
    expect(parseCommand('sshkey')).toEqual({ name: 'sshkey-list' });
  });
});
