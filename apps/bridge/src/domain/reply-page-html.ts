/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const STYLE = `
body{margin:0;background:#f5f5f5;color:#222;font:17px/1.7 -apple-system,BlinkMacSystemFont,"PingFang SC","Hiragino Sans GB","Microsoft YaHei",sans-serif}
main{max-width:720px;margin:0 auto;padding:16px}
h1{font-size:18px;font-weight:600;margin:8px 0 12px}
article{background:#fff;border-radius:10px;padding:16px;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}
footer{color:#888;font-size:13px;margin:12px 4px}
`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body><main>${body}</main></body>
</html>
`;
}

/** The page behind a long reply's link: the whole reply, escaped, readable on a phone. */
export function renderReplyPage(text: string, createdAt: string, ttlDays: number): string {
  const when = createdAt.slice(0, 16).replace('T', ' ');
  return page(
    '完整回复',
    `<h1>完整回复</h1><article>${escapeHtml(text)}</article>` +
      `<footer>${escapeHtml(when)} UTC · 此链接 ${ttlDays} 天内有效</footer>`,
  );
}

export function renderMissingPage(): string {
  return page('内容不存在', '<h1>内容不存在或已过期</h1><footer>请回到公众号重新提问。</footer>');
}
