/**
 * Recognises the bridge's commands in a text message. Pure: no I/O. Command words are
 * case-insensitive and may start with `/`; commands without arguments must be the whole
 * message, so "help me write a poem" goes to the agent.
 */
export type Command =
  | { name: 'help' }
  | { name: 'status' }
  | { name: 'unbind' }
  | { name: 'ssh' }
  | { name: 'reset' }
  | { name: 'bind'; url: string; token: string }
  | { name: 'bind-usage' }
  | { name: 'sshkey-add'; key: string }
  | { name: 'sshkey-clear' }
  | { name: 'sshkey-list' };

const NO_ARG: Record<string, Command> = {
  help: { name: 'help' },
  帮助: { name: 'help' },
  '?': { name: 'help' },
  status: { name: 'status' },
  状态: { name: 'status' },
  unbind: { name: 'unbind' },
  ssh: { name: 'ssh' },
  reset: { name: 'reset' },
};

/** The command in `text`, or null when the text is for the agent. */
export function parseCommand(text: string): Command | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  const [first = '', ...rest] = trimmed.split(/\s+/);
  const word = first.replace(/^\//, '').toLowerCase();

  if (rest.length === 0) {
    const cmd = NO_ARG[word];
    if (cmd) return cmd;
  }
  if (word === 'bind') {
    if (rest.length !== 2) return { name: 'bind-usage' };
    const [url = '', token = ''] = rest;
    return { name: 'bind', url, token };
  }
  if (word === 'sshkey') {
    if (rest.length === 0) return { name: 'sshkey-list' };
    if (rest.length === 1 && rest[0]?.toLowerCase() === 'clear') return { name: 'sshkey-clear' };
    // The key is everything after the command word, as typed (type, base64 blob, comment).
    const key = trimmed.slice(trimmed.indexOf(first) + first.length).trim();
    return { name: 'sshkey-add', key };
  }
  return null;
}
