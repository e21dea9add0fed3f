import type { Overview } from '../adapters/admin-overview.js';

/**
 * The console's HTML, rendered on the server (README → Console). Every value that comes from
 * users, Redis or other services goes through {@link esc}; nothing secret is in the model.
 * Times are `<time datetime>` elements that the page script turns into "5 min ago".
 */

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML content and double- or single-quoted attributes. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESC[c] as string);
}

function iso(ms: number | string | null | undefined): string | null {
  if (ms === null || ms === undefined || ms === '') return null;
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** A time shown relative to now by the page script; the UTC time without it. */
function time(ms: number | string | null | undefined, mode: 'ago' | 'since' | 'until' = 'ago'): string {
  const t = iso(ms);
  if (!t) return '<span class="muted">—</span>';
  return `<time datetime="${t}" data-rel="${mode}" title="${t}">${esc(t.slice(5, 19).replace('T', ' '))} UTC</time>`;
}

function duration(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

type Tone = 'ok' | 'warn' | 'bad' | 'idle' | 'info';

function pill(text: string, tone: Tone): string {
  return `<span class="pill ${tone}">${esc(text)}</span>`;
}

const VM_STATE: Record<string, [string, Tone]> = {
  running: ['运行中 running', 'ok'],
  creating: ['启动中 starting', 'warn'],
  stopped: ['已停止 stopped', 'idle'],
  error: ['错误 error', 'bad'],
};

function vmState(state: string | null | undefined): string {
  if (!state) return pill('无 none', 'idle');
  const [label, tone] = VM_STATE[state] ?? [state, 'info'];
  return pill(label, tone);
}

const STATUS: Record<string, [string, Tone]> = {
  queued: ['排队中 queued', 'warn'],
  processing: ['处理中 processing', 'warn'],
  with_agent: ['等待助手 with agent', 'warn'],
  replying: ['回复处理中 reply queued', 'warn'],
  answered: ['已回答 answered', 'ok'],
  replied: ['已回复 replied', 'ok'],
  agent_error: ['助手不可用 agent error', 'bad'],
  timed_out: ['助手超时 timed out', 'bad'],
  send_failed: ['发送失败 send failed', 'bad'],
  gave_up: ['处理失败 gave up', 'bad'],
  done: ['完成 done', 'idle'],
  expired: ['记录已过期 expired', 'idle'],
};

const SLOT: Record<string, string> = {
  answer: '回答 answer',
  reply: '回复 reply',
  error: '错误提示 error notice',
  coldstart: '启动提示 starting notice',
  notice: '超时提示 timeout notice',
  giveup: '失败提示 failure notice',
};

const ERRCODE: Record<number, string> = {
  45015: '超过 48 小时或已取关 window closed',
  45047: '超过 5 条 budget used',
  48001: '接口未授权 API not authorized',
  40003: 'openid 无效 invalid openid',
};

type Row = Overview['messages'][number];
type Slot = Row['sends'][number];

function slotText(s: Slot): string {
  const label = SLOT[s.slot] ?? s.slot;
  const parts = s.parts > 1 ? ` · 分 ${s.parts} 条 ${s.parts} parts` : '';
  const cut = s.cut ? ' · 其余见网页 rest on reply page' : '';
  switch (s.outcome) {
    case 'sent':
      return `<span class="send ok">${esc(label)}: ✓ 已发送 sent${esc(parts)}${esc(cut)}</span>`;
    case 'sending':
      return `<span class="send warn">${esc(label)}: 发送中 sending ${s.sent}/${s.parts}</span>`;
    case 'no_budget':
      return `<span class="send bad">${esc(label)}: ✗ 无发送额度 no budget left</span>`;
    case 'failed': {
      const meaning = s.errcode !== null && ERRCODE[s.errcode] ? ` (${ERRCODE[s.errcode]})` : '';
      return `<span class="send bad">${esc(label)}: ✗ errcode ${esc(s.errcode ?? '?')}${esc(meaning)}${s.sent ? ` · ${s.sent}/${s.parts} sent` : ''}</span>`;
    }
  }
}

function messageRow(m: Row): string {
  const [label, tone] = STATUS[m.status] ?? [m.status, 'info'];
  const route = m.route === 'command' ? '命令 command' : m.route === 'agent' ? '助手 agent' : '事件 event';
  const retries = m.retries
    ? ` <span class="muted" title="WeChat retries recognised and dropped">· 重试去重 ${m.retries} deduped</span>`
    : '';
  const attempts =
    m.attempts > 1 ? ` <span class="muted">· 第 ${m.attempts} 次 attempt ${m.attempts}</span>` : '';
  const replies = m.replies
    .map((r) => {
      const text = r.ok ? esc(r.preview) : '<em>助手报告失败 agent reported a failure</em>';
      const sends = r.sends.length
        ? r.sends.map(slotText).join('')
        : '<span class="send warn">待发送 to send</span>';
      return `<div class="reply"><div class="bubble">${text}</div><div class="meta">${time(r.at)}${r.guessed ? ' · <span class="muted" title="the agent did not name the message it answers">按时间匹配 matched by time</span>' : ''}</div>${sends}</div>`;
    })
    .join('');
  const own = m.sends.map(slotText).join('');
  return `<tr data-eid="${esc(m.eid)}">
<td data-label="时间 Time"><div class="v">${time(m.at)}</div></td>
<td data-label="用户 User"><div class="v"><code class="id">${esc(m.openid)}</code></div></td>
<td data-label="消息 Message"><div class="v"><div class="bubble me">${esc(m.preview) || '<span class="muted">(空 empty)</span>'}</div><div class="meta">${esc(m.kind)} · ${esc(route)}${retries}</div></div></td>
<td data-label="状态 Status"><div class="v">${pill(label, tone)}${attempts}</div></td>
<td data-label="回复 Reply"><div class="v">${own}${replies}${own || replies ? '' : '<span class="muted">—</span>'}</div></td>
</tr>`;
}

function usersTable(o: Overview): string {
  if (o.users.rows.length === 0) return '<p class="empty">还没有用户。 No users yet.</p>';
  const rows = o.users.rows
    .map((u) => {
      const binding = u.boundUrl
        ? `${pill('自有实例 own OpenClaw', 'info')} <code class="url">${esc(u.boundUrl)}</code>`
        : pill('平台虚拟机 platform VM', 'idle');
      const last = u.lastPush
        ? `<div class="bubble me">${esc(u.lastPush.preview)}</div><div class="meta">${time(u.lastPush.at)} · ${esc(u.lastPush.kind)}</div>`
        : `<span class="muted">最近出现 last seen</span> ${time(u.lastSeenAt)}`;
      const follow =
        u.subscribed === null
          ? '<span class="muted">—</span>'
          : u.subscribed
            ? pill('已关注 following', 'ok')
            : pill('已取关 unfollowed', 'idle');
      return `<tr data-openid="${esc(u.openid)}">
<td data-label="用户 User"><div class="v"><code class="id">${esc(u.openid)}</code>${u.sshKeys ? `<div class="meta">SSH 公钥 keys: ${u.sshKeys}</div>` : ''}</div></td>
<td data-label="关注 Following"><div class="v">${follow}</div></td>
<td data-label="绑定 Binding"><div class="v">${binding}</div></td>
<td data-label="最近消息 Last message"><div class="v">${last}</div></td>
<td data-label="虚拟机 VM"><div class="v">${u.boundUrl && !u.vm ? '<span class="muted">—</span>' : vmState(u.vm?.state)}</div></td>
</tr>`;
    })
    .join('');
  const more =
    o.users.total > o.users.rows.length
      ? `<p class="muted">显示最近活跃的 ${o.users.rows.length} 位（共 ${o.users.total} 位） Showing the ${o.users.rows.length} most recently active of ${o.users.total}.</p>`
      : '';
  return `<table class="rt"><thead><tr><th>用户 User</th><th>关注 Following</th><th>绑定 Binding</th><th>最近消息 Last message</th><th>虚拟机 VM</th></tr></thead><tbody>${rows}</tbody></table>${more}`;
}

function actionForm(openid: string, action: 'stop' | 'start' | 'reset', csrf: string): string {
  const label = { stop: '停止 Stop', start: '启动 Start', reset: '重建 Reset' }[action];
  const title = {
    stop: 'Stop the VM; its data disk stays',
    start: 'Start (or create) the VM',
    reset: 'Recreate the VM from the base image; the data disk stays',
  }[action];
  return `<form method="post" action="/admin/vms/${encodeURIComponent(openid)}/${action}" class="act" data-action="${action}" data-openid="${esc(openid)}"><input type="hidden" name="csrf" value="${esc(csrf)}"><button type="submit" class="${action === 'reset' ? 'danger' : action === 'start' ? 'primary' : ''}" title="${esc(title)}">${esc(label)}</button></form>`;
}

function vmsTable(o: Overview, csrf: string): string {
  const hosts = o.vms.rows.some((v) => v.host_id);
  const error = o.vms.error
    ? `<p class="alert">无法读取虚拟机列表 Cannot list VMs: ${esc(o.vms.error)}</p>`
    : '';
  if (o.vms.rows.length === 0)
    return `${error}${o.vms.error ? '' : '<p class="empty">没有虚拟机。 No VMs.</p>'}`;
  const rows = o.vms.rows
    .map((v) => {
      const mem =
        v.rss_mib !== null
          ? `${esc(Math.round(v.rss_mib))} MiB <span class="muted">/ ${esc(v.mem_mib ?? '?')} MiB</span>`
          : v.mem_mib !== null
            ? `${esc(v.mem_mib)} MiB`
            : '<span class="muted">—</span>';
      const running = v.state === 'running';
      const uptime = running && v.started_at ? time(v.started_at, 'since') : '<span class="muted">—</span>';
      const actions = [
        running || v.state === 'creating'
          ? actionForm(v.user_id, 'stop', csrf)
          : actionForm(v.user_id, 'start', csrf),
        actionForm(v.user_id, 'reset', csrf),
      ].join('');
      return `<tr data-vm="${esc(v.user_id)}" data-state="${esc(v.state)}">
<td data-label="用户 User"><div class="v"><code class="id">${esc(v.user_id)}</code></div></td>
<td data-label="状态 State"><div class="v">${vmState(v.state)}${v.error ? `<div class="meta bad">${esc(v.error)}</div>` : ''}</div></td>
${hosts ? `<td data-label="主机 Host"><div class="v">${v.host_id ? `<code>${esc(v.host_id)}</code>` : '<span class="muted">—</span>'}</div></td>` : ''}
<td data-label="地址 IP"><div class="v">${v.ip ? `<code>${esc(v.ip)}</code>` : '<span class="muted">—</span>'}${v.ssh ? `<div class="meta">ssh ${esc(v.ssh.host)}:${esc(v.ssh.port)}</div>` : ''}</div></td>
<td data-label="运行时长 Uptime"><div class="v">${uptime}</div></td>
<td data-label="内存 Memory"><div class="v">${mem}</div></td>
<td data-label="最近活动 Last activity"><div class="v">${time(v.last_active_at)}</div></td>
<td data-label="操作 Actions" class="actions"><div class="v">${actions}</div></td>
</tr>`;
    })
    .join('');
  const more =
    o.vms.total > o.vms.rows.length
      ? `<p class="muted">显示 ${o.vms.rows.length} / ${o.vms.total} Showing ${o.vms.rows.length} of ${o.vms.total}.</p>`
      : '';
  return `${error}<table class="rt"><thead><tr><th>用户 User</th><th>状态 State</th>${hosts ? '<th>主机 Host</th>' : ''}<th>地址 IP</th><th>运行时长 Uptime</th><th>内存 Memory</th><th>最近活动 Last activity</th><th>操作 Actions</th></tr></thead><tbody>${rows}</tbody></table>${more}`;
}

function probeCard(
  title: string,
  probe: Overview['health']['orchestrator'] | null,
  metricsHref: string | null,
  facts: (b: Record<string, unknown>) => string[],
): string {
  if (!probe) {
    return `<div class="card"><h3>${esc(title)}</h3>${pill('未配置 not configured', 'idle')}<p class="meta">设置 SSH_GATEWAY_STATUS_URL 以显示 Set SSH_GATEWAY_STATUS_URL to show it.</p></div>`;
  }
  const status = typeof probe.body?.['status'] === 'string' ? (probe.body['status'] as string) : null;
  const tone: Tone = probe.ok ? (status && status !== 'ok' ? 'warn' : 'ok') : 'bad';
  const label = probe.ok ? (status ?? 'ok') : (probe.error ?? 'down');
  const lines = probe.body ? facts(probe.body) : [];
  return `<div class="card"><h3>${esc(title)}</h3>${pill(probe.ok ? `正常 ${label}` : `异常 ${label}`, tone)}<ul>${lines.map((l) => `<li>${l}</li>`).join('')}</ul>${metricsHref ? `<a href="${esc(metricsHref)}" class="metrics">/metrics</a>` : ''}</div>`;
}

function healthCards(o: Overview): string {
  const h = o.health;
  const b = h.bridge;
  const bridge = `<div class="card"><h3>网桥 Bridge</h3>${b.ok ? pill('正常 ok', 'ok') : pill(`异常 ${b.error ?? 'error'}`, 'bad')}<ul>
<li>Redis: ${b.redisMs !== null ? `${esc(b.redisMs)} ms` : '<span class="bad">—</span>'}</li>
<li>队列 Queue: ${b.queue ? `${esc(b.queue.depth)} 等待 waiting · ${esc(b.queue.pending)} 处理中 in progress` : '—'}</li>
<li>进程 Processes: ${esc(b.processes ?? '—')}</li>
<li>本进程运行 This process up: ${esc(duration(b.uptimeS))}</li>
</ul><a href="/metrics" class="metrics">/metrics</a></div>`;
  const orch = probeCard('编排器 Orchestrator', h.orchestrator, '/admin/metrics/orchestrator', (body) => {
    const details = (body['details'] ?? {}) as Record<string, unknown>;
    const out = [
      `驱动 Driver: ${esc(body['driver'] ?? '—')}${details['accel'] ? ` (${esc(details['accel'])})` : ''}`,
    ];
    out.push(`虚拟机 VMs running: ${esc(body['vms'] ?? '—')}`);
    if (body['driver_problem']) out.push(`<span class="bad">${esc(body['driver_problem'])}</span>`);
    for (const host of h.hosts) {
      const slots = host.maxVms ? `${host.activeVms}/${host.maxVms}` : `${host.activeVms}`;
      out.push(
        `${host.accepting ? pill('✓', 'ok') : pill('✗', 'bad')} 主机 host <code>${esc(host.id)}</code> · ${esc(slots)} VMs · ${esc(host.memAvailableMib)} MiB free${host.problem ? ` · <span class="bad">${esc(host.problem)}</span>` : ''} · ${time(host.heartbeatAt)}`,
      );
    }
    return out;
  });
  const gw = probeCard(
    'SSH 网关 SSH gateway',
    h.sshGateway,
    h.sshGateway ? '/admin/metrics/ssh-gateway' : null,
    (body) => [
      `连接 Connections: ${esc(body['connections'] ?? '—')}`,
      `会话 Sessions: ${esc(body['sessions'] ?? '—')}`,
      `Redis: ${esc(body['redis'] ?? '—')}`,
    ],
  );
  const w = h.wechat;
  let token: string;
  if (!w.token) token = pill(`未知 unknown: ${w.tokenError ?? ''}`, 'bad');
  else if (w.token.cached)
    token = `${pill('已缓存 cached', 'ok')} <span class="meta">过期 expires ${time(w.token.expiresAt, 'until')}</span>`;
  else token = pill('未缓存 not cached (fetched on the next send)', 'idle');
  const errors = w.errors.length
    ? w.errors.map((e) => `<code>${esc(e.errcode)}</code>×${esc(e.count)}`).join(' ')
    : '<span class="muted">无 none</span>';
  const wechat = `<div class="card"><h3>微信 WeChat</h3><ul>
<li>AppID: <code>${esc(w.appId)}</code></li>
<li>API: <code>${esc(w.apiBase)}</code></li>
<li>Access token: ${token}${w.token?.refreshing ? ` ${pill('刷新中 refreshing', 'warn')}` : ''}</li>
<li>接口错误 API errors (this process): ${errors}</li>
</ul></div>`;
  return `<div class="cards">${bridge}${orch}${gw}${wechat}</div>`;
}

/** The sections the page script refreshes (the content of `<main id="console">`). */
export function renderSections(o: Overview, csrf: string): string {
  const messages = o.messages.length
    ? `<table class="rt messages"><thead><tr><th>时间 Time</th><th>用户 User</th><th>消息 Message</th><th>状态 Status</th><th>回复 Reply</th></tr></thead><tbody>${o.messages.map(messageRow).join('')}</tbody></table>`
    : '<p class="empty">还没有消息。 No messages yet.</p>';
  return `<section id="health"><h2>健康 Health</h2>${healthCards(o)}</section>
<section id="messages"><h2>消息 Messages <span class="count">${o.messages.length}</span></h2>${messages}</section>
<section id="users"><h2>用户 Users <span class="count">${o.users.total}</span></h2>${usersTable(o)}</section>
<section id="vms"><h2>虚拟机 VMs <span class="count">${o.vms.total}</span></h2>${vmsTable(o, csrf)}</section>`;
}

const HEAD = (title: string) => `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${esc(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/admin/assets/console.css">`;

/** The whole console page. */
export function renderConsolePage(o: Overview, csrf: string, pollMs = 3000): string {
  return `${HEAD('Moltage 控制台 Console')}
<meta name="csrf-token" content="${esc(csrf)}">
<script src="/admin/assets/console.js" defer></script>
</head>
<body>
<header class="top">
<h1>Moltage <span>控制台 Console</span></h1>
<span id="live" class="pill idle" title="自动刷新 auto-refresh">${time(o.now)}</span>
<form method="post" action="/admin/logout" class="logout"><input type="hidden" name="csrf" value="${esc(csrf)}"><button type="submit">退出 Log out</button></form>
</header>
<nav class="tabs"><a href="#health">健康 Health</a><a href="#messages">消息 Messages</a><a href="#users">用户 Users</a><a href="#vms">虚拟机 VMs</a></nav>
<main id="console" data-poll-ms="${esc(pollMs)}">
${renderSections(o, csrf)}
</main>
<div id="toast" role="status" aria-live="polite"></div>
</body>
</html>
`;
}

/** The login form; `problem` explains a refused attempt. */
export function renderLoginPage(problem?: string): string {
  return `${HEAD('登录 Log in — Moltage 控制台 Console')}
</head>
<body class="login">
<form method="post" action="/admin/login" class="login-box">
<h1>Moltage <span>控制台 Console</span></h1>
<input type="text" name="username" value="admin" autocomplete="username" hidden>
<label for="token">管理令牌 Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required minlength="16" maxlength="512" autofocus>
${problem ? `<p class="alert" role="alert">${esc(problem)}</p>` : ''}
<button type="submit" class="primary">登录 Log in</button>
<p class="meta">令牌即网桥的 ADMIN_TOKEN。 The token is the bridge's ADMIN_TOKEN.</p>
</form>
</body>
</html>
`;
}

/** The answer to an action posted without the page script. */
export function renderActionResult(ok: boolean, message: string): string {
  return `${HEAD('Moltage 控制台 Console')}
</head>
<body class="login">
<div class="login-box">
<p class="${ok ? 'ok' : 'alert'}">${esc(message)}</p>
<a href="/admin#vms">返回控制台 Back to the console</a>
</div>
</body>
</html>
`;
}
