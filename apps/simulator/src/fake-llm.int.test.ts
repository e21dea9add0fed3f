import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimulatorClient } from './client.js';
import { type StartedSimulator, startSimulator } from './start.js';

let sim: StartedSimulator;
let client: SimulatorClient;

beforeEach(async () => {
  sim = await startSimulator();
  client = new SimulatorClient(sim.url);
});
afterEach(async () => {
  await sim.close();
});

// biome-ignore lint/suspicious/noExplicitAny: JSON answers are inspected field by field
type Json = Record<string, any>;

function chat(body: Json, headers: Record<string, string> = {}) {
  return fetch(`${sim.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** Reads a whole SSE response into its events (`event:` name, if any, and raw `data:`). */
async function readSse(res: Response): Promise<{ event: string | null; data: string }[]> {
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const text = await res.text();
  const events: { event: string | null; data: string }[] = [];
  for (const block of text.split('\n\n')) {
    if (block.trim() === '') continue;
    let event: string | null = null;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    events.push({ event, data: data.join('\n') });
  }
  return events;
}

const user = (content: unknown) => ({
  model: 'fake-model',
  messages: [
    { role: 'system', content: 'be nice' },
    { role: 'user', content },
  ],
});

describe('chat completions', () => {
  it('echoes the last user message (non-streaming), in OpenAI’s shape', async () => {
    const res = await chat({
      model: 'any-model',
      messages: [
        { role: 'user', content: 'first' },
        { role: 'assistant', content: 'Echo: first' },
        { role: 'user', content: 'second' },
      ],
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Json;
    expect(body).toMatchObject({
      object: 'chat.completion',
      model: 'any-model',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Echo: second' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number) },
    });
    expect(body['id']).toMatch(/^chatcmpl-/);
  });

  it('streams chunks in OpenAI’s format and ends with [DONE]', async () => {
    const res = await chat({ ...user('[[fake:fixed=Hello there, streaming world! 你好]]'), stream: true });
    const events = await readSse(res);
    expect(events.at(-1)!.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as Json);
    expect(chunks.length).toBeGreaterThan(2);
    for (const c of chunks) {
      expect(c).toMatchObject({ object: 'chat.completion.chunk', model: 'fake-model', id: chunks[0]!['id'] });
      expect(c['choices']).toHaveLength(1);
    }
    expect(chunks[0]!['choices'][0].delta).toMatchObject({ role: 'assistant', content: '' });
    expect(chunks.at(-1)!['choices'][0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    const text = chunks.map((c) => c['choices'][0].delta.content ?? '').join('');
    expect(text).toBe('Hello there, streaming world! 你好');
  });

  it('stream_options.include_usage adds a final usage chunk', async () => {
    const res = await chat({
      ...user('usage please'),
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = (await readSse(res)).slice(0, -1).map((e) => JSON.parse(e.data) as Json);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { total_tokens: expect.any(Number) } });
  });

  it('finds directives inside wrapped text; long=N gives N bytes with paragraphs', async () => {
    const wrapped = [{ type: 'text', text: '[WeChat user o123 says]\nplease [[fake:long=5000]] thanks' }];
    const body = (await (await chat(user(wrapped))).json()) as Json;
    const text = body['choices'][0].message.content as string;
    expect(Buffer.byteLength(text)).toBe(5000);
    expect(text).toContain('\n\n');
    const again = (await (await chat(user(wrapped))).json()) as Json;
    expect(again['choices'][0].message.content).toBe(text);
  });

  it('long Chinese text is valid UTF-8 of exactly N bytes', async () => {
    const body = (await (await chat(user('[[fake:long=3001]][[fake:lang=zh]]'))).json()) as Json;
    const text = body['choices'][0].message.content as string;
    expect(Buffer.byteLength(text)).toBe(3001);
    expect(text).toMatch(/[\u4e00-\u9fff]/);
    expect(text).not.toContain('\ufffd');
  });

  it('delay combines with other directives', async () => {
    const body = (await (await chat(user('[[fake:delay=50]] [[fake:fixed=late]]'))).json()) as Json;
    expect(body['choices'][0].message.content).toBe('late');
  });

  it('error=CODE answers that HTTP status with OpenAI’s error JSON', async () => {
    for (const status of [429, 500, 503, 400]) {
      const res = await chat({ ...user(`boom [[fake:error=${status}]]`), stream: true });
      expect(res.status).toBe(status);
      const body = (await res.json()) as Json;
      expect(Object.keys(body)).toEqual(['error']);
      expect(Object.keys(body['error']).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(body['error']).toMatchObject({
        message: expect.any(String),
        type: expect.any(String),
        param: null,
      });
    }
    const res = await chat(user('[[fake:error=429]]'));
    expect(((await res.json()) as Json)['error']).toMatchObject({
      type: 'requests',
      code: 'rate_limit_exceeded',
    });
  });

  it('ignores tools and answers with plain text', async () => {
    const res = await chat({
      ...user('what time is it'),
      tools: [
        { type: 'function', function: { name: 'clock', parameters: { type: 'object', properties: {} } } },
      ],
      tool_choice: 'auto',
    });
    const body = (await res.json()) as Json;
    expect(body['choices'][0]).toMatchObject({
      message: { content: 'Echo: what time is it' },
      finish_reason: 'stop',
    });
    expect(body['choices'][0].message.tool_calls).toBeUndefined();
    expect((await client.llmRequests())[0]).toMatchObject({
      hadTools: true,
      lastUserText: 'what time is it',
    });
  });

  it('bad requests get 400 in OpenAI’s shape', async () => {
    const res = await chat({ model: 'fake-model' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Json)['error']).toMatchObject({
      type: 'invalid_request_error',
      param: 'messages',
    });
    const notJson = await fetch(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{nope',
    });
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as Json)['error']).toHaveProperty('type');
  });

  it('records requests for tests', async () => {
    await chat({ ...user('recorded [[fake:fixed=ok]]'), stream: true }).then(readSse);
    const [r] = await client.llmRequests();
    expect(r).toMatchObject({
      endpoint: 'chat_completions',
      model: 'fake-model',
      stream: true,
      status: 200,
      lastUserText: 'recorded [[fake:fixed=ok]]',
      answerPreview: 'ok',
    });
    await client.clearLlmRequests();
    expect(await client.llmRequests()).toEqual([]);
  });

  it('checks the bearer key when one is configured', async () => {
    await client.setLlmApiKey('sk-test-123');
    const none = await chat(user('hi'));
    expect(none.status).toBe(401);
    expect(((await none.json()) as Json)['error']).toMatchObject({ code: 'invalid_api_key' });
    expect((await chat(user('hi'), { authorization: 'Bearer sk-wrong' })).status).toBe(401);
    expect((await chat(user('hi'), { authorization: 'Bearer sk-test-123' })).status).toBe(200);
    await client.setLlmApiKey(null);
    expect((await chat(user('hi'))).status).toBe(200);
  });

  it('fault switches apply to the fake LLM too', async () => {
    await client.setFault('chat_completions', { http500Times: 1 });
    const res = await chat(user('x'));
    expect(res.status).toBe(500);
    expect(((await res.json()) as Json)['error']).toMatchObject({ type: 'server_error' });
    expect((await chat(user('x'))).status).toBe(200);
  });
});

describe('models and responses', () => {
  it('GET /v1/models lists the configured models', async () => {
    const res = await fetch(`${sim.url}/v1/models`);
    expect(await res.json()).toEqual({
      object: 'list',
      data: [{ id: 'fake-model', object: 'model', created: expect.any(Number), owned_by: 'moltage-sim' }],
    });
    expect((await fetch(`${sim.url}/v1/models/nope`)).status).toBe(404);
  });

  it('POST /v1/responses answers non-streaming', async () => {
    const res = await fetch(`${sim.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'fake-model',
        instructions: 'be brief',
        input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi there' }] }],
      }),
    });
    const body = (await res.json()) as Json;
    expect(body).toMatchObject({
      object: 'response',
      status: 'completed',
      instructions: 'be brief',
      output: [
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Echo: hi there' }] },
      ],
    });
  });

  it('POST /v1/responses streams semantic events ending with response.completed', async () => {
    const res = await fetch(`${sim.url}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'fake-model',
        input: '[[fake:fixed=streamed answer here]]',
        stream: true,
      }),
    });
    const events = await readSse(res);
    const names = events.map((e) => e.event);
    expect(names[0]).toBe('response.created');
    expect(names.at(-1)).toBe('response.completed');
    const parsed = events.map((e) => JSON.parse(e.data) as Json);
    expect(parsed.map((p) => p['sequence_number'])).toEqual(parsed.map((_p, i) => i));
    const deltas = parsed
      .filter((p) => p['type'] === 'response.output_text.delta')
      .map((p) => p['delta'])
      .join('');
    expect(deltas).toBe('streamed answer here');
    expect(parsed.at(-1)!['response'].output[0].content[0].text).toBe('streamed answer here');
  });

  it('unknown /v1 routes answer 404 in OpenAI’s shape', async () => {
    const res = await fetch(`${sim.url}/v1/embeddings`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect(((await res.json()) as Json)['error']).toHaveProperty('message');
  });
});
