import { describe, expect, it } from 'vitest';
import { escapeHtml, renderReplyPage } from './reply-page-html.js';

describe('reply page', () => {
  it('escapes the reply so it cannot inject markup', () => {
    const html = renderReplyPage('<script>alert("x")</script> & \'q\'', '2025-01-02T03:04:05.000Z', 7);
    expect(html).not.toContain('<script>alert');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;');
    expect(html).toContain('name="viewport"');
    expect(html).toContain('7 天内有效');
  });

  it('escapes every HTML-special character', () => {
    expect(escapeHtml(`<>&"'`)).toBe('&lt;&gt;&amp;&quot;&#39;');
  });
});
