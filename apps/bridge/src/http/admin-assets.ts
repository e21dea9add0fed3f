/**
 * The console's stylesheet and script, served from /admin/assets/ (no build step, no inline
 * code, so the page's Content-Security-Policy allows only its own origin). The script refreshes
 * the sections every few seconds, shows times relative to now and posts the VM actions with the
 * session's CSRF token; without it the page still works (plain forms, manual reload).
 */

export const CONSOLE_CSS = `
:root { --bg:#f4f5f7; --card:#fff; --line:#e3e5e8; --text:#1d2129; --muted:#86909c; --accent:#07c160;
  --ok-bg:#e8f7ee; --ok:#0a7a3c; --warn-bg:#fff4e0; --warn:#a15c00; --bad-bg:#fdecec; --bad:#c4291c;
  --idle-bg:#eef0f3; --idle:#4e5969; --info-bg:#e8f0fe; --info:#1a56c4; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.5 -apple-system, BlinkMacSystemFont, "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 17px; margin: 0; font-weight: 600; }
h1 span { color: var(--muted); font-weight: 400; }
h2 { font-size: 15px; margin: 0 0 10px; font-weight: 600; }
h3 { font-size: 14px; margin: 0 0 6px; font-weight: 600; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code.id, code.url { word-break: break-all; }
a { color: var(--info); }
button { font: inherit; border: 1px solid var(--line); background: #fff; color: var(--text); border-radius: 6px;
  padding: 4px 10px; cursor: pointer; }
button:hover { background: #f2f3f5; }
button:disabled { opacity: .5; cursor: progress; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.primary:hover { background: #06ad56; }
button.danger { color: var(--bad); }
.top { position: sticky; top: 0; z-index: 2; display: flex; align-items: center; gap: 10px; padding: 10px 16px;
  background: #fff; border-bottom: 1px solid var(--line); }
.top h1 { flex: 1; }
.logout { margin: 0; }
.tabs { display: flex; gap: 4px; padding: 6px 12px; background: #fff; border-bottom: 1px solid var(--line); overflow-x: auto; }
.tabs a { text-decoration: none; color: var(--idle); padding: 4px 10px; border-radius: 14px; white-space: nowrap; }
.tabs a:hover { background: var(--idle-bg); }
main { max-width: 1200px; margin: 0 auto; padding: 12px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px; margin-bottom: 14px;
  scroll-margin-top: 64px; }
.count { color: var(--muted); font-weight: 400; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; position: relative; }
.card ul { list-style: none; margin: 8px 0 0; padding: 0; }
.card li { margin: 2px 0; }
.card .metrics { position: absolute; top: 10px; right: 12px; font-size: 12px; }
.pill { display: inline-block; font-size: 12px; line-height: 18px; padding: 0 8px; border-radius: 9px; white-space: nowrap; }
.pill.ok { background: var(--ok-bg); color: var(--ok); }
.pill.warn { background: var(--warn-bg); color: var(--warn); }
.pill.bad { background: var(--bad-bg); color: var(--bad); white-space: normal; }
.pill.idle { background: var(--idle-bg); color: var(--idle); }
.pill.info { background: var(--info-bg); color: var(--info); }
.muted, .meta { color: var(--muted); }
.meta { font-size: 12px; margin-top: 2px; }
.bad { color: var(--bad); }
.empty { color: var(--muted); margin: 4px 0; }
.alert { background: var(--bad-bg); color: var(--bad); border-radius: 6px; padding: 8px 10px; }
.ok { color: var(--ok); }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-weight: 500; color: var(--muted); font-size: 12px; padding: 6px 8px; border-bottom: 1px solid var(--line); }
td { padding: 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
tr:last-child td { border-bottom: none; }
.bubble { display: inline-block; max-width: 100%; background: var(--idle-bg); border-radius: 6px; padding: 3px 8px;
  white-space: pre-wrap; word-break: break-word; }
.bubble.me { background: #dff5d0; }
.reply { margin-top: 4px; }
.reply + .reply { margin-top: 10px; }
.send { display: block; font-size: 12px; margin-top: 2px; }
.send.ok { color: var(--ok); } .send.warn { color: var(--warn); } .send.bad { color: var(--bad); }
.actions { white-space: nowrap; }
.act { display: inline; margin: 0 4px 0 0; }
#toast { position: fixed; left: 50%; bottom: 18px; transform: translateX(-50%); max-width: 92vw; padding: 8px 14px;
  border-radius: 8px; background: #1d2129; color: #fff; opacity: 0; transition: opacity .2s; pointer-events: none; }
#toast.show { opacity: .95; }
#toast.bad { background: var(--bad); }
body.login { display: flex; min-height: 100vh; align-items: center; justify-content: center; padding: 16px; }
.login-box { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 24px; width: 100%; max-width: 380px;
  display: flex; flex-direction: column; gap: 10px; }
.login-box input { font: inherit; padding: 8px 10px; border: 1px solid var(--line); border-radius: 6px; }
.login-box button { padding: 8px; }
@media (max-width: 760px) {
  .top { padding: 8px 10px; }
  main { padding: 8px; }
  section { padding: 10px; }
  table.rt thead { display: none; }
  table.rt, table.rt tbody, table.rt tr, table.rt td { display: block; width: 100%; }
  table.rt tr { border: 1px solid var(--line); border-radius: 8px; padding: 6px 8px; margin-bottom: 8px; }
  table.rt td { border: none; padding: 3px 0; display: flex; gap: 8px; }
  table.rt td::before { content: attr(data-label); flex: 0 0 88px; color: var(--muted); font-size: 12px; padding-top: 2px; }
  table.rt td > .v { flex: 1; min-width: 0; }
  .top h1 { font-size: 15px; }
  .top h1 span { display: none; }
  .actions { white-space: normal; }
}
`;

export const CONSOLE_JS = String.raw`(function () {
  'use strict';
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute('content') : '';
  var main = document.getElementById('console');
  var POLL_MS = Math.max(200, parseInt(main.getAttribute('data-poll-ms'), 10) || 3000);
  var live = document.getElementById('live');
  var toastEl = document.getElementById('toast');
  var last = null;
  var polling = false;
  var pending = {};
  var toastTimer = null;

  function span(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }
  function relTimes() {
    var now = Date.now();
    var els = document.querySelectorAll('time[data-rel]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var t = Date.parse(el.getAttribute('datetime'));
      if (isNaN(t)) continue;
      var mode = el.getAttribute('data-rel');
      var d = (now - t) / 1000;
      if (mode === 'since') el.textContent = span(d);
      else if (mode === 'until') el.textContent = d < 0 ? 'in ' + span(-d) : 'expired';
      else el.textContent = d < 5 ? 'just now' : span(d) + ' ago';
      el.title = new Date(t).toLocaleString();
    }
  }
  function toast(text, bad) {
    toastEl.textContent = text;
    toastEl.className = 'show' + (bad ? ' bad' : '');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastEl.className = ''; }, 6000);
  }
  function markPending() {
    var forms = document.querySelectorAll('form.act');
    for (var i = 0; i < forms.length; i++) {
      var f = forms[i];
      var busy = !!pending[f.getAttribute('data-openid')];
      var b = f.querySelector('button');
      if (b) b.disabled = busy;
    }
  }
  function setLive(ok) {
    live.className = 'pill ' + (ok ? 'ok' : 'bad');
    live.textContent = ok ? '● 实时 live ' + new Date().toLocaleTimeString() : '连接中断 offline';
  }
  function poll() {
    if (polling || document.visibilityState === 'hidden') return;
    polling = true;
    fetch('/admin/partial', { headers: { accept: 'text/html' }, cache: 'no-store', credentials: 'same-origin' })
      .then(function (res) {
        if (res.status === 401) { window.location.href = '/admin/login'; return null; }
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.text();
      })
      .then(function (html) {
        if (html === null) return;
        if (html !== last) {
          last = html;
          main.innerHTML = html;
          markPending();
        }
        relTimes();
        setLive(true);
      })
      .catch(function () { setLive(false); })
      .then(function () { polling = false; });
  }

  document.addEventListener('submit', function (ev) {
    var f = ev.target;
    if (!f || !f.classList || !f.classList.contains('act')) return;
    ev.preventDefault();
    var action = f.getAttribute('data-action');
    var openid = f.getAttribute('data-openid');
    if (pending[openid]) return;
    if (action === 'reset' && !window.confirm('重建 ' + openid + ' 的虚拟机？数据盘保留。\nRecreate the VM of ' + openid + '? Its data disk is kept.')) return;
    pending[openid] = action;
    markPending();
    toast((action === 'stop' ? '正在停止 Stopping ' : action === 'start' ? '正在启动 Starting ' : '正在重建 Resetting ') + openid + '…');
    fetch(f.getAttribute('action'), {
      method: 'POST',
      headers: { accept: 'application/json', 'x-csrf-token': csrf },
      credentials: 'same-origin'
    })
      .then(function (res) {
        if (res.status === 401) { window.location.href = '/admin/login'; return null; }
        return res.json().then(function (body) { return { ok: res.ok, body: body }; });
      })
      .then(function (r) {
        if (!r) return;
        toast(r.ok ? r.body.message : (r.body.error || 'failed'), !r.ok);
      })
      .catch(function (e) { toast(String(e && e.message || e), true); })
      .then(function () { delete pending[openid]; last = null; poll(); });
  });

  relTimes();
  setLive(true);
  setInterval(poll, POLL_MS);
  setInterval(relTimes, 1000);
  document.addEventListener('visibilitychange', function () { if (document.visibilityState === 'visible') poll(); });
})();
`;
