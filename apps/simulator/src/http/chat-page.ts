import type { FastifyInstance } from 'fastify';

/**
 * The chat page: plain HTML and JavaScript, no build step. It plays fake WeChat users through
 * the JSON API (`/sim/…`) and follows changes over Server-Sent Events (`/sim/events`).
 * Everything user-supplied is inserted with textContent, never as HTML.
 */
export const CHAT_PAGE_HTML = String.raw`<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<title>微信模拟器 · WeChat Simulator — Moltage</title>
<style>
  :root { --bg:#ededed; --bar:#f7f7f7; --me:#95ec69; --them:#fff; --line:#d9d9d9; --muted:#888; --accent:#07c160; --warn:#fa5151; }
  * { box-sizing: border-box; }
  html, body { height: 100%; margin: 0; }
  body { font: 15px/1.45 -apple-system, BlinkMacSystemFont, "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Segoe UI", Roboto, sans-serif; background: var(--bg); color: #111; }
  .app { display: flex; flex-direction: column; height: 100%; max-width: 760px; margin: 0 auto; background: var(--bg); border-left: 1px solid var(--line); border-right: 1px solid var(--line); }
  header { background: var(--bar); border-bottom: 1px solid var(--line); padding: 8px 12px; }
  .title { display: flex; align-items: center; gap: 8px; }
  .title h1 { font-size: 16px; margin: 0; flex: 1; font-weight: 600; }
  .pill { font-size: 12px; color: #555; background: #e4e4e4; border-radius: 10px; padding: 1px 8px; white-space: nowrap; }
  .pill.ok { background: #d8f5e3; color: #0a7a3c; } .pill.bad { background: #fde2e2; color: #b42318; }
  .users { display: flex; gap: 6px; align-items: center; margin-top: 8px; flex-wrap: wrap; }
  select, input, button { font: inherit; }
  select, input[type=text], input[type=url], input[type=number] { border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; background: #fff; min-width: 0; }
  #userSelect { flex: 1 1 160px; }
  button { border: 1px solid var(--line); background: #fff; border-radius: 6px; padding: 6px 10px; cursor: pointer; }
  button:hover { background: #f2f2f2; } button:disabled { opacity: .5; cursor: default; }
  button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
  button.primary:hover { background: #06ad56; }
  button.danger { color: var(--warn); }
  .icon { background: none; border: none; font-size: 18px; padding: 2px 6px; }
  #settings { display: none; margin-top: 8px; padding: 8px; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
  #settings.open { display: block; }
  #settings .row { display: flex; gap: 6px; align-items: center; margin: 6px 0; flex-wrap: wrap; }
  #settings label { font-size: 13px; color: #555; min-width: 92px; }
  #settings input[type=url] { flex: 1 1 220px; }
  #settingsMsg { font-size: 13px; color: var(--muted); white-space: pre-wrap; }
  main { flex: 1; overflow-y: auto; padding: 12px 10px 16px; -webkit-overflow-scrolling: touch; }
  .empty { text-align: center; color: var(--muted); margin-top: 40px; font-size: 14px; }
  .row-msg { display: flex; margin: 10px 0; gap: 8px; align-items: flex-start; }
  .row-msg.me { flex-direction: row-reverse; }
  .avatar { width: 36px; height: 36px; border-radius: 6px; flex: none; display: flex; align-items: center; justify-content: center; font-size: 13px; color: #fff; background: #576b95; }
  .me .avatar { background: #7aa95c; }
  .stack { max-width: 78%; display: flex; flex-direction: column; }
  .me .stack { align-items: flex-end; }
  .bubble { background: var(--them); border-radius: 6px; padding: 8px 10px; white-space: pre-wrap; word-break: break-word; box-shadow: 0 1px 0 rgba(0,0,0,.04); }
  .me .bubble { background: var(--me); }
  .bubble img { max-width: 160px; display: block; image-rendering: pixelated; background: #ccc; min-width: 60px; min-height: 60px; }
  .meta { font-size: 11px; color: var(--muted); margin-top: 3px; }
  .meta.bad { color: var(--warn); }
  .meta details { display: inline; } .meta summary { cursor: pointer; display: inline; }
  .attempts { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11px; white-space: pre-wrap; background: #f7f7f7; border: 1px solid var(--line); border-radius: 4px; padding: 4px 6px; margin-top: 4px; text-align: left; max-width: 100%; overflow-x: auto; }
  .system { text-align: center; margin: 10px 0; }
  .system span { display: inline-block; font-size: 12px; color: #fff; background: #c8c8c8; border-radius: 4px; padding: 2px 8px; }
  .system.bad span { background: #f3b3b3; color: #7a1d1d; }
  .typing { color: var(--muted); font-size: 13px; padding: 0 12px 6px; min-height: 20px; }
  footer { background: var(--bar); border-top: 1px solid var(--line); padding: 8px; padding-bottom: max(8px, env(safe-area-inset-bottom)); }
  .composer { display: flex; gap: 6px; }
  #text { flex: 1; resize: none; border: 1px solid var(--line); border-radius: 6px; padding: 8px; font: inherit; max-height: 120px; min-height: 38px; }
  #drawer { display: none; gap: 6px; flex-wrap: wrap; margin-top: 8px; }
  #drawer.open { display: flex; }
  #drawer input { flex: 1 1 120px; }
  .hint { font-size: 12px; color: var(--muted); margin-top: 6px; }
</style>
</head>
<body>
<div class="app">
  <header>
    <div class="title">
      <h1>微信模拟器 <span style="color:#888;font-weight:400">WeChat Simulator</span></h1>
      <span id="modePill" class="pill" title="消息加解密方式 / message encryption mode">…</span>
      <span id="connPill" class="pill" title="实时连接 / live connection">…</span>
      <button id="settingsBtn" class="icon" title="设置 Settings" aria-label="设置 Settings" aria-expanded="false">⚙︎</button>
    </div>
    <div class="users">
      <select id="userSelect" aria-label="选择用户 Pick a user"></select>
      <input id="newNickname" type="text" placeholder="昵称 Nickname" maxlength="64" style="flex:0 1 130px">
      <button id="newUserBtn" title="创建用户 Create a user">＋ 新用户 New user</button>
      <button id="followBtn" disabled>关注 Follow</button>
    </div>
    <div id="settings" role="region" aria-label="设置 Settings">
      <div class="row"><label for="bridgeUrl">服务器地址<br>Bridge URL</label><input id="bridgeUrl" type="url" placeholder="http://127.0.0.1:3000/wechat"></div>
      <div class="row"><label for="mode">加解密方式<br>Mode</label>
        <select id="mode"><option value="plaintext">明文 plaintext</option><option value="compatible">兼容 compatible</option><option value="safe">安全 safe</option></select>
        <button id="saveSettings" class="primary">保存 Save</button>
        <button id="verifyBtn" title="GET with echostr">验证 URL · Verify</button>
      </div>
      <div class="row"><label>虚拟时钟<br>Clock</label>
        <span id="clockText" class="pill">…</span>
        <button id="advance48" title="+48 h: closes the 48-hour window">+48 小时 hours</button>
        <button id="advance5m" title="+5 min: an old access token stops working">+5 分钟 min</button>
        <button id="resetBtn" class="danger" title="清空用户、消息与记录 Clear users, messages and logs">重置 Reset</button>
      </div>
      <div class="row"><label>AppID</label><span id="appIdText" class="pill">…</span><span id="origIdText" class="pill">…</span></div>
      <div id="settingsMsg"></div>
    </div>
  </header>
  <main id="chat" aria-live="polite"><div class="empty">创建或选择一个用户开始聊天<br>Create or pick a user to start chatting</div></main>
  <div id="typing" class="typing"></div>
  <footer>
    <div class="composer">
      <button id="moreBtn" title="更多 More" aria-label="更多 More" aria-expanded="false">＋</button>
      <textarea id="text" rows="1" placeholder="输入消息 Type a message" aria-label="消息 Message"></textarea>
      <button id="sendBtn" class="primary">发送 Send</button>
    </div>
    <div id="drawer">
      <input id="menuKey" type="text" value="MENU_HELP" maxlength="128" aria-label="菜单键 Menu key">
      <button id="clickBtn" title="CLICK 菜单事件">菜单 Menu (CLICK)</button>
      <button id="locationBtn" title="发送位置 Send a location">位置 Location</button>
      <button id="imageBtn" title="发送图片 Send an image">图片 Image</button>
      <button id="voiceBtn" title="语音（带识别结果）Voice with recognition">语音 Voice</button>
    </div>
    <div class="hint">Enter 发送 · Shift+Enter 换行 — Enter sends, Shift+Enter for a new line</div>
  </footer>
</div>
<script>
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var state = { users: [], current: localStorage.getItem('sim.openid') || '', items: {}, account: null, typing: false };

  function api(method, path, body) {
    var init = { method: method, headers: {} };
    if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (res) {
      if (res.status === 204) return null;
      return res.json().then(function (data) {
        if (!res.ok) { var e = new Error((data && data.error && data.error.message) || ('HTTP ' + res.status)); e.data = data; throw e; }
        return data;
      });
    });
  }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function seqOf(id) { return parseInt(String(id).replace(/^\D+/, ''), 10) || 0; }
  function timeOf(iso) { try { return new Date(iso).toLocaleTimeString(); } catch (e) { return ''; } }
  function flash(msg, bad) { var m = $('settingsMsg'); m.textContent = msg; m.style.color = bad ? '#b42318' : '#555'; }
  function currentUser() { for (var i = 0; i < state.users.length; i++) if (state.users[i].openid === state.current) return state.users[i]; return null; }

  function renderAccount() {
    var a = state.account; if (!a) return;
    var names = { plaintext: '明文 plaintext', compatible: '兼容 compatible', safe: '安全 safe' };
    $('modePill').textContent = names[a.mode] || a.mode;
    $('mode').value = a.mode;
    if (document.activeElement !== $('bridgeUrl')) $('bridgeUrl').value = a.bridgeUrl || '';
    $('appIdText').textContent = a.appId;
    $('origIdText').textContent = a.originalId;
  }
  function renderUsers() {
    var sel = $('userSelect'); sel.textContent = '';
    if (state.users.length === 0) { var o = el('option', '', '（无用户 no users）'); o.value = ''; sel.appendChild(o); }
    state.users.forEach(function (u) {
      var o = el('option', '', u.nickname + (u.following ? '' : ' · 未关注 not following') + ' — ' + u.openid.slice(0, 10) + '…');
      o.value = u.openid; sel.appendChild(o);
    });
    sel.value = state.current;
    var u = currentUser();
    var fb = $('followBtn');
    fb.disabled = !u;
    fb.textContent = u && u.following ? '取消关注 Unfollow' : '关注 Follow';
    fb.className = u && u.following ? 'danger' : '';
    var canSend = !!(u && u.following);
    ['sendBtn', 'clickBtn', 'locationBtn', 'imageBtn', 'voiceBtn'].forEach(function (id) { $(id).disabled = !canSend; });
    $('text').placeholder = !u ? '先创建用户 Create a user first' : (u.following ? '输入消息 Type a message' : '先关注公众号 Follow the account first');
    state.typing = !!(u && u.typing);
    renderTyping();
  }
  function renderTyping() { $('typing').textContent = state.typing ? '对方正在输入… typing…' : ''; }

  function pushStatus(p) {
    var n = p.attempts.length;
    switch (p.status) {
      case 'pending': return { text: n ? ('重试中 retrying · 第 ' + (n + 1) + ' 次 attempt ' + (n + 1)) : '发送中 sending…', bad: false };
      case 'ok': return { text: '已送达 delivered ✓' + (n > 1 ? ' (' + n + ' 次 attempts)' : ''), bad: false };
      case 'bad_reply': return { text: '回复无效 bad reply ✗', bad: true };
      case 'failed': return { text: '失败 failed ✗ (' + n + ' 次 attempts)', bad: true };
      case 'undeliverable': return { text: '未配置服务器 no bridge URL', bad: true };
      default: return { text: p.status, bad: false };
    }
  }
  function attemptsText(p) {
    var lines = p.attempts.map(function (a) {
      return '#' + a.n + ' ' + a.outcome + (a.status !== null ? ' HTTP ' + a.status : '') + ' · ' + a.durationMs + ' ms' +
        (a.error ? ' · ' + a.error : '') + (a.body ? '\n   ' + a.body.slice(0, 300) : '');
    });
    if (p.problem) lines.push(p.problem);
    lines.unshift('MsgId/ref: ' + p.ref + '  (' + p.kind + ')');
    return lines.join('\n');
  }

  function renderPush(p) {
    if (p.kind === 'event:subscribe' || p.kind === 'event:unsubscribe') {
      var sys = el('div', 'system'); sys.appendChild(el('span', '', p.summary + ' · ' + pushStatus(p).text)); 
      if (p.notice) { var wrap = el('div'); wrap.appendChild(sys); var n = el('div', 'system bad'); n.appendChild(el('span', '', p.notice)); wrap.appendChild(n); return wrap; }
      return sys;
    }
    var row = el('div', 'row-msg me');
    row.appendChild(el('div', 'avatar', '我'));
    var stack = el('div', 'stack');
    var b = el('div', 'bubble');
    if (p.kind === 'image' && p.fields && p.fields.PicUrl) { var img = el('img'); img.src = p.fields.PicUrl; img.alt = '图片 image'; b.appendChild(img); }
    else b.textContent = p.summary;
    stack.appendChild(b);
    var st = pushStatus(p);
    var meta = el('div', 'meta' + (st.bad ? ' bad' : ''));
    var det = el('details'); var sum = el('summary', '', timeOf(p.createdAt) + ' · ' + st.text);
    det.appendChild(sum); det.appendChild(el('div', 'attempts', attemptsText(p)));
    meta.appendChild(det);
    stack.appendChild(meta);
    row.appendChild(stack);
    if (!p.notice) return row;
    var outer = el('div'); outer.appendChild(row);
    var notice = el('div', 'system bad'); notice.appendChild(el('span', '', p.notice)); outer.appendChild(notice);
    return outer;
  }
  function renderInbox(e) {
    var row = el('div', 'row-msg');
    row.appendChild(el('div', 'avatar', '号'));
    var stack = el('div', 'stack');
    stack.appendChild(el('div', 'bubble', e.preview));
    var label = e.via === 'passive_reply' ? '被动回复 passive reply' : '客服消息 customer service';
    if (e.countsAgainst) label += ' · ' + e.countsAgainst.n + '/' + e.countsAgainst.budget;
    stack.appendChild(el('div', 'meta', timeOf(e.arrivedAt) + ' · ' + label));
    row.appendChild(stack);
    return row;
  }
  function renderChat() {
    var chat = $('chat');
    var nearBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80;
    chat.textContent = '';
    var keys = Object.keys(state.items).sort(function (a, b) { return seqOf(a) - seqOf(b); });
    if (keys.length === 0) {
      chat.appendChild(el('div', 'empty', currentUser() ? '还没有消息。先关注，再发一条消息。\nNo messages yet. Follow, then send one.' : '创建或选择一个用户开始聊天\nCreate or pick a user to start chatting'));
      return;
    }
    keys.forEach(function (k) { var it = state.items[k]; chat.appendChild(it.kind === 'push' ? renderPush(it.v) : renderInbox(it.v)); });
    if (nearBottom) chat.scrollTop = chat.scrollHeight;
  }

  function loadConversation() {
    state.items = {};
    if (!state.current) { renderChat(); return Promise.resolve(); }
    var openid = encodeURIComponent(state.current);
    return Promise.all([api('GET', '/sim/pushes?openid=' + openid), api('GET', '/sim/users/' + openid + '/inbox')]).then(function (r) {
      r[0].pushes.forEach(function (p) { state.items[p.id] = { kind: 'push', v: p }; });
      r[1].entries.forEach(function (e) { state.items[e.id] = { kind: 'inbox', v: e }; });
      renderChat();
      $('chat').scrollTop = $('chat').scrollHeight;
    }).catch(function (e) { flash(e.message, true); });
  }
  function loadAll() {
    return Promise.all([api('GET', '/sim/account'), api('GET', '/sim/users'), api('GET', '/sim/clock')]).then(function (r) {
      state.account = r[0]; state.users = r[1].users; $('clockText').textContent = clockLabel(r[2]);
      if (state.current && !currentUser()) state.current = '';
      if (!state.current && state.users.length) state.current = state.users[state.users.length - 1].openid;
      renderAccount(); renderUsers();
      return loadConversation();
    });
  }
  function clockLabel(c) { var h = Math.round(c.offsetMs / 360000) / 10; return new Date(c.now).toLocaleString() + (h ? ' (+' + h + ' h)' : ''); }

  function selectUser(openid) { state.current = openid; localStorage.setItem('sim.openid', openid); renderUsers(); loadConversation(); }

  function sendMessage(msg) {
    if (!state.current) return;
    api('POST', '/sim/users/' + encodeURIComponent(state.current) + '/messages?wait=false', msg).catch(function (e) { alert(e.message); });
  }

  $('userSelect').addEventListener('change', function (ev) { selectUser(ev.target.value); });
  $('newUserBtn').addEventListener('click', function () {
    var nick = $('newNickname').value.trim();
    api('POST', '/sim/users', nick ? { nickname: nick } : {}).then(function (r) {
      $('newNickname').value = '';
      if (!state.users.some(function (u) { return u.openid === r.user.openid; })) state.users.push(r.user);
      selectUser(r.user.openid);
    }).catch(function (e) { alert(e.message); });
  });
  $('followBtn').addEventListener('click', function () {
    var u = currentUser(); if (!u) return;
    api('POST', '/sim/users/' + encodeURIComponent(u.openid) + (u.following ? '/unfollow' : '/follow') + '?wait=false', {}).catch(function (e) { alert(e.message); });
  });
  $('sendBtn').addEventListener('click', function () {
    var t = $('text').value; if (!t.trim()) return;
    $('text').value = ''; sendMessage({ type: 'text', content: t }); $('text').focus();
  });
  $('text').addEventListener('keydown', function (ev) { if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $('sendBtn').click(); } });
  $('moreBtn').addEventListener('click', function () { var d = $('drawer'); d.classList.toggle('open'); $('moreBtn').setAttribute('aria-expanded', d.classList.contains('open')); });
  $('clickBtn').addEventListener('click', function () { var k = $('menuKey').value.trim() || 'MENU_HELP'; sendMessage({ type: 'event', event: 'CLICK', eventKey: k }); });
  $('locationBtn').addEventListener('click', function () { sendMessage({ type: 'location', latitude: 22.543096, longitude: 114.057865, scale: 15, label: '深圳市福田区 Futian, Shenzhen' }); });
  $('imageBtn').addEventListener('click', function () { sendMessage({ type: 'image' }); });
  $('voiceBtn').addEventListener('click', function () {
    var t = $('text').value.trim() || '你好 hello';
    $('text').value = ''; sendMessage({ type: 'voice', recognition: t });
  });
  $('settingsBtn').addEventListener('click', function () { var s = $('settings'); s.classList.toggle('open'); $('settingsBtn').setAttribute('aria-expanded', s.classList.contains('open')); });
  $('saveSettings').addEventListener('click', function () {
    var url = $('bridgeUrl').value.trim();
    api('PATCH', '/sim/account', { bridgeUrl: url || null, mode: $('mode').value }).then(function (a) { state.account = a; renderAccount(); flash('已保存 Saved'); })
      .catch(function (e) { flash(e.message, true); });
  });
  $('verifyBtn').addEventListener('click', function () {
    flash('验证中 Verifying…');
    api('POST', '/sim/verify', {}).then(function (r) {
      flash(r.ok ? '验证成功 URL verified ✓ (' + r.durationMs + ' ms)' : '验证失败 Verification failed: ' + (r.error || ('HTTP ' + r.status + ' ' + String(r.body).slice(0, 120))), !r.ok);
    }).catch(function (e) { flash(e.message, true); });
  });
  function advance(body) { api('POST', '/sim/clock/advance', body).then(function (c) { $('clockText').textContent = clockLabel(c); }).catch(function (e) { flash(e.message, true); }); }
  $('advance48').addEventListener('click', function () { advance({ hours: 48, seconds: 1 }); });
  $('advance5m').addEventListener('click', function () { advance({ minutes: 5, seconds: 1 }); });
  $('resetBtn').addEventListener('click', function () { if (confirm('清空所有用户和记录？ Clear all users and records?')) api('POST', '/sim/reset').catch(function (e) { flash(e.message, true); }); });

  function connect() {
    var es = new EventSource('/sim/events');
    es.addEventListener('open', function () { $('connPill').textContent = '实时 live'; $('connPill').className = 'pill ok'; loadAll().catch(function () {}); });
    es.addEventListener('error', function () { $('connPill').textContent = '重连中 reconnecting'; $('connPill').className = 'pill bad'; });
    es.addEventListener('user', function (m) {
      var e = JSON.parse(m.data); var found = false;
      state.users = state.users.map(function (u) { if (u.openid === e.openid) { found = true; return e.user; } return u; });
      if (!found) state.users.push(e.user);
      renderUsers();
    });
    es.addEventListener('push', function (m) { var e = JSON.parse(m.data); if (e.openid !== state.current) return; state.items[e.push.id] = { kind: 'push', v: e.push }; renderChat(); });
    es.addEventListener('inbox', function (m) { var e = JSON.parse(m.data); if (e.openid !== state.current) return; state.items[e.entry.id] = { kind: 'inbox', v: e.entry }; renderChat(); });
    es.addEventListener('typing', function (m) {
      var e = JSON.parse(m.data);
      state.users.forEach(function (u) { if (u.openid === e.openid) u.typing = e.typing; });
      if (e.openid === state.current) { state.typing = e.typing; renderTyping(); }
    });
    es.addEventListener('account', function () { api('GET', '/sim/account').then(function (a) { state.account = a; renderAccount(); }); });
    es.addEventListener('reset', function () { state.current = ''; loadAll().catch(function () {}); });
  }
  loadAll().catch(function (e) { flash(e.message, true); });
  connect();
})();
</script>
</body>
</html>
`;

export function registerChatPage(app: FastifyInstance): void {
  app.get('/', async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header(
        'content-security-policy',
        "default-src 'self'; img-src 'self' data: http: https:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
      )
      .send(CHAT_PAGE_HTML),
  );
}
