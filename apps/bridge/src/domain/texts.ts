/**
 * Everything a WeChat user reads from the bridge: short Chinese text, no stack traces, no
 * secrets. Kept in one file so wording stays consistent.
 */

export const HELP = [
  '可用命令：',
  'help — 显示本帮助',
  'status — 查看环境和绑定状态',
  'bind <网址> <令牌> — 改用你自己的 OpenClaw',
  'unbind — 解除绑定，回到平台环境',
  'ssh — 获取 SSH 登录命令和一次性密码',
  'sshkey <公钥> — 添加 SSH 公钥（sshkey clear 清除）',
  'reset — 重建你的环境（数据保留）',
  '其他消息会直接发给 AI 助手。',
].join('\n');

export const WELCOME = `欢迎关注！我是你的 AI 助手，你有一台自己的专属环境。\n\n${HELP}`;

export const T = {
  coldStart: '正在为你启动专属环境，请稍候……',
  vmFailed: '抱歉，你的专属环境暂时无法启动，请稍后再试。',
  vmTimeout: '环境启动超时，请稍后再发一次消息。',
  vmHostDown: '抱歉，你的专属环境所在的服务器暂时无法访问，你的数据仍保存在那里，请稍后再试。',
  agentUnreachable: '抱歉，AI 助手暂时无法连接，请稍后再试。',
  agentTimeout: '抱歉，AI 助手长时间没有回复，请稍后再试。',
  heldAnswers: '之前来不及发出的回复（当时已超出微信允许的消息条数）：',
  agentFailed: '抱歉，AI 助手处理这条消息时出错了，请稍后再试。',
  internalError: '抱歉，处理你的消息时出了点问题，请稍后再试。',
  voiceUnsupported: '暂不支持语音消息，请发送文字。',
  unsupportedType: '暂不支持这种消息类型，请发送文字。',
  emptyText: '消息是空的，请发送文字。',
  bindUsage: '用法：bind <网址> <令牌>\n例如：bind https://example.com/webhook 你的令牌',
  bindBadScheme: '绑定失败：网址必须以 http:// 或 https:// 开头。',
  bindInvalid: '绑定失败：网址格式不正确。',
  bindForbidden: '绑定失败：不允许绑定到本机、内网或保留地址。',
  bindUnresolvable: '绑定失败：无法解析该网址的域名。',
  unbindOk: '已解除绑定，之后的消息将由平台环境处理。',
  unbindNone: '你当前没有绑定自己的 OpenClaw。',
  sshkeyInvalid: '公钥无效：请发送完整的一行 OpenSSH 公钥（以 ssh-ed25519、ssh-rsa 或 ecdsa-sha2- 开头）。',
  sshkeyCleared: '已清除所有 SSH 公钥。',
  sshkeyNone: '你还没有添加 SSH 公钥。发送 sshkey <公钥> 添加。',
  resetOk: '已重建你的环境，数据已保留。',
  unknownCommandArgs: '命令格式不正确。发送 help 查看用法。',
} as const;

export function bindOk(display: string): string {
  return `已绑定到你的 OpenClaw：${display}\n之后的消息会发到那里。发送 unbind 可解除绑定。`;
}

export function boundUnreachable(display: string): string {
  return `无法连接到你绑定的 OpenClaw（${display}），请确认它在运行，或发送 unbind 解除绑定。`;
}

export function sshInfo(line: string, password: string, ttlMinutes: number): string {
  return [
    'SSH 登录命令：',
    line,
    `一次性密码：${password}`,
    `（${ttlMinutes} 分钟内有效，只能使用一次）`,
    '也可以发送 sshkey <公钥> 改用密钥登录。',
  ].join('\n');
}

export function sshkeyAdded(fingerprint: string, type: string): string {
  return `已添加 SSH 公钥（${type}）：\n${fingerprint}`;
}

export function sshkeyTooMany(max: number): string {
  return `最多可保存 ${max} 个公钥，请先发送 sshkey clear 清除。`;
}

export function sshkeyList(fingerprints: string[]): string {
  return `已添加的 SSH 公钥：\n${fingerprints.join('\n')}\n发送 sshkey clear 可全部清除。`;
}

export type VmStateView = 'running' | 'creating' | 'stopped' | 'error' | 'none' | 'unknown' | 'host_down';

const VM_STATE_TEXT: Record<VmStateView, string> = {
  running: '运行中',
  creating: '启动中',
  stopped: '已停止（发消息会自动启动）',
  error: '出错（可发送 reset 重建）',
  none: '尚未创建（发消息会自动创建）',
  unknown: '暂时无法查询',
  host_down: '所在服务器暂时无法访问（数据仍保存在那里）',
};

export function statusText(view: { vm: VmStateView; binding: string | null; sshKeys: number }): string {
  return [
    '当前状态：',
    `专属环境：${VM_STATE_TEXT[view.vm]}`,
    `绑定：${view.binding ? `已绑定 ${view.binding}` : '未绑定（使用平台环境）'}`,
    `SSH 公钥：${view.sshKeys} 个`,
  ].join('\n');
}

export function resetWhileBound(display: string): string {
  return `已重建平台环境，数据已保留。\n注意：你当前绑定了 ${display}，消息仍会发到那里。`;
}

/** Appended to the last message a long reply can use; the page shows the whole reply. */
export function longReplySuffix(url: string): string {
  return `\n\n……内容较长，完整回复请查看：\n${url}`;
}
