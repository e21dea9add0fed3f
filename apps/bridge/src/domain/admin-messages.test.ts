import { parseMessage } from '@moltage/wechat';
import { describe, expect, it } from 'vitest';
import { buildMessageRows, type JournalEvent, parseLedger, pushSummary } from './admin-messages.js';

function text(content: string) {
  return parseMessage(
    `<xml><ToUserName>gh</ToUserName><FromUserName>oU</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content><![CDATA[${content}]]></Content><MsgId>7</MsgId></xml>`,
  );
}

const push = (
  id: string,
  eid: string,
  extra: Partial<Extract<JournalEvent, { t: 'push' }>> = {},
): JournalEvent => ({
  t: 'push',
  id,
  at: Number(id.split('-')[0]),
  openid: 'oU',
  eid,
  kind: 'text',
  preview: 'hello',
  route: 'agent',
  duplicate: false,
  ...extra,
});

const reply = (id: string, eid: string, replyTo: string | null, need = 1): JournalEvent => ({
  t: 'reply',
  id,
  at: Number(id.split('-')[0]),
  openid: 'oU',
  eid,
  replyTo,
  ok: true,
  preview: 'the answer',
  need,
  duplicate: false,
});

const noFacts = () => ({
  ledgers: new Map<string, Record<string, string>>(),
  inInbox: new Set<string>(),
  waiting: new Set<string>(),
});

describe('console message summaries', () => {
  it('hides the token of a bind command and the query of its URL', () => {
    const s = pushSummary(text('bind https://claw.example.com/hook?sig=Q1 tok-SECRET'));
    expect(s.preview).toBe('bind https://claw.example.com/hook ••••••');
    expect(s.route).toBe('command');
    expect(JSON.stringify(s)).not.toMatch(/SECRET|sig=/);
  });

  it('keeps a short preview of other text and routes it to the agent', () => {
    const s = pushSummary(text(`${'长'.repeat(300)}`));
    expect(Array.from(s.preview)).toHaveLength(120);
    expect(s.preview.endsWith('…')).toBe(true);
    expect(s.route).toBe('agent');
  });
});

describe('console ledger view', () => {
  it('reads a reply split into three messages, all sent', () => {
    const [slot] = parseLedger(
      {
        attempts: '1',
        'reserved:reply': '3',
        'part:reply:0': 'sent',
        'part:reply:1': 'sent',
        'part:reply:2': 'sent',
        'done:reply': '1',
      },
      3,
    );
    expect(slot).toEqual({ slot: 'reply', parts: 3, sent: 3, outcome: 'sent', errcode: null, cut: false });
  });

  it('reports the errcode of a refused message and a reply cut by the budget', () => {
    const [slot] = parseLedger(
      { 'reserved:reply': '2', 'part:reply:0': 'sent', 'part:reply:1': 'failed:45047', 'done:reply': '1' },
      6,
    );
    expect(slot).toMatchObject({ outcome: 'failed', errcode: 45047, sent: 1, parts: 2, cut: true });
  });

  it('says "sending" while a plan is in progress and "no budget" when nothing could be sent', () => {
    expect(parseLedger({ 'plan:answer': '["a","b"]', 'part:answer:0': 'sent' })[0]).toMatchObject({
      outcome: 'sending',
      sent: 1,
      parts: 2,
    });
    expect(parseLedger({ 'reserved:reply': '0', 'plan:reply': '[]', 'done:reply': '1' })[0]).toMatchObject({
      outcome: 'no_budget',
    });
  });
});

describe('console message rows', () => {
  it('links a reply to the message it names and counts WeChat retries once', () => {
    const events = [
      push('1000-0', 'm:1'),
      push('1001-0', 'm:1', { duplicate: true }),
      reply('1500-0', 'r:a', 'm:1'),
      push('2000-0', 'm:2', { preview: 'help', route: 'command' }),
    ];
    const facts = noFacts();
    facts.ledgers.set('m:1', { attempts: '1', dispatched: '1200' });
    facts.ledgers.set('r:a', { 'part:reply:0': 'sent', 'done:reply': '1', 'reserved:reply': '1' });
    facts.ledgers.set('m:2', { attempts: '1', 'part:answer:0': 'sent', 'done:answer': '1' });
    const rows = buildMessageRows(events, facts, 10);
    expect(rows.map((r) => r.eid)).toEqual(['m:2', 'm:1']);
    expect(rows[1]).toMatchObject({ status: 'replied', retries: 1, route: 'agent' });
    expect(rows[1]?.replies).toHaveLength(1);
    expect(rows[1]?.replies[0]).toMatchObject({ preview: 'the answer', guessed: false });
    expect(rows[0]).toMatchObject({ status: 'answered', route: 'command' });
  });

  it('attaches a reply without message_id to the latest message for the agent, marked as a guess', () => {
    const rows = buildMessageRows(
      [push('1000-0', 'm:1'), push('1100-0', 'm:2', { route: 'command' }), reply('1200-0', 'r:x', null)],
      noFacts(),
      10,
    );
    const m1 = rows.find((r) => r.eid === 'm:1');
    expect(m1?.replies[0]?.guessed).toBe(true);
    expect(rows.find((r) => r.eid === 'm:2')?.replies).toHaveLength(0);
  });

  it('tells queued, processing, waiting for the agent, timed out and given up apart', () => {
    const facts = noFacts();
    facts.inInbox.add('m:q');
    facts.inInbox.add('m:p');
    facts.ledgers.set('m:p', { attempts: '2' });
    facts.ledgers.set('m:w', { attempts: '1', dispatched: '1' });
    facts.waiting.add('m:w');
    facts.ledgers.set('m:t', { attempts: '1', dispatched: '1' });
    facts.ledgers.set('timeout:m:t', { 'part:notice:0': 'sent', 'done:notice': '1' });
    facts.ledgers.set('m:g', { attempts: '5', 'part:giveup:0': 'sent', 'done:giveup': '1' });
    const rows = buildMessageRows(
      ['m:q', 'm:p', 'm:w', 'm:t', 'm:g'].map((eid, i) => push(`${1000 + i}-0`, eid)),
      facts,
      10,
    );
    const status = Object.fromEntries(rows.map((r) => [r.eid, r.status]));
    expect(status).toEqual({
      'm:q': 'queued',
      'm:p': 'processing',
      'm:w': 'with_agent',
      'm:t': 'timed_out',
      'm:g': 'gave_up',
    });
    expect(rows.find((r) => r.eid === 'm:p')?.attempts).toBe(2);
  });

  it('shows only the newest rows', () => {
    const events = Array.from({ length: 30 }, (_, i) => push(`${1000 + i}-0`, `m:${i}`));
    const rows = buildMessageRows(events, noFacts(), 5);
    expect(rows.map((r) => r.eid)).toEqual(['m:29', 'm:28', 'm:27', 'm:26', 'm:25']);
  });
});
