import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  approxTokens,
  chunkText,
  lastUserTextOfChat,
  lastUserTextOfResponsesInput,
  openAiError,
  scriptAnswer,
} from '../domain/fake-llm.js';
import type { FaultEndpoint } from '../domain/faults.js';
import { type RouteContext, sleep, takeFaults } from './faults.js';

const FINGERPRINT = 'fp_moltage_sim';

function keyMatches(expected: string, header: string | undefined): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m?.[1]) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(m[1].trim());
  return a.length === b.length && timingSafeEqual(a, b);
}

function sse(reply: FastifyReply): (line: string) => boolean {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  return (chunk: string) => {
    if (res.destroyed) return false;
    res.write(chunk);
    return true;
  };
}

/**
 * The fake OpenAI-compatible model: `GET /v1/models`, `POST /v1/chat/completions` and
 * `POST /v1/responses`, streaming or not, answering by the script in domain/fake-llm.ts.
 * Tools in the request are ignored (the answer is always plain text).
 */
export function registerFakeLlm(app: FastifyInstance, ctx: RouteContext): void {
  const { sim } = ctx;

  /** Runs faults and the bearer check; returns false when the request has been answered. */
  async function gate(endpoint: FaultEndpoint, req: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const decision = await takeFaults(ctx, endpoint, req, reply);
    if (decision.action?.kind === 'timeout') return false;
    if (decision.action?.kind === 'http500') {
      await reply.code(500).send(openAiError(500));
      return false;
    }
    const key = sim.llmApiKey;
    if (key !== undefined && !keyMatches(key, req.headers.authorization)) {
      await reply.code(401).send(openAiError(401));
      return false;
    }
    return true;
  }

  function badRequest(reply: FastifyReply, message: string, param: string | null) {
    const body = openAiError(400, message);
    body.error.param = param;
    return reply.code(400).send(body);
  }

  app.get('/v1/models', async (req, reply) => {
    if (!(await gate('models', req, reply))) return reply;
    return {
      object: 'list',
      data: sim.llmModels.map((id) => ({
        id,
        object: 'model',
        created: 1_700_000_000,
        owned_by: 'moltage-sim',
      })),
    };
  });

  app.get('/v1/models/:model', async (req, reply) => {
    if (!(await gate('models', req, reply))) return reply;
    const { model } = req.params as { model: string };
    if (!sim.llmModels.includes(model)) {
      return reply.code(404).send(openAiError(404, `The model '${model}' does not exist`));
    }
    return { id: model, object: 'model', created: 1_700_000_000, owned_by: 'moltage-sim' };
  });

  /**
   * The scripted answer to a request: waits its delay, records the request, and answers a
   * scripted error itself (then returns null); otherwise returns the text to send.
   */
  async function answerScripted(
    reply: FastifyReply,
    endpoint: 'chat_completions' | 'responses',
    model: string,
    stream: boolean,
    lastUserText: string | null,
    body: Record<string, unknown>,
  ): Promise<string | null> {
    const answer = scriptAnswer(lastUserText);
    const record = (status: number, text: string) =>
      sim.recordLlmRequest({
        endpoint,
        model,
        stream,
        lastUserText,
        hadTools: Array.isArray(body['tools']) && body['tools'].length > 0,
        status,
        answerBytes: Buffer.byteLength(text, 'utf8'),
        answerPreview: text.slice(0, 200),
        body,
      });
    await sleep(answer.delayMs, ctx.closing);
    if (answer.kind === 'error') {
      record(answer.status, '');
      await reply.code(answer.status).send(openAiError(answer.status));
      return null;
    }
    record(200, answer.text);
    return answer.text;
  }

  app.post('/v1/chat/completions', async (req, reply) => {
    if (!(await gate('chat_completions', req, reply))) return reply;
    const body = req.body as Record<string, unknown> | null;
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return badRequest(reply, 'The request body must be a JSON object.', null);
    }
    if (typeof body['model'] !== 'string' || body['model'] === '') {
      return badRequest(reply, 'you must provide a model parameter', 'model');
    }
    if (!Array.isArray(body['messages']) || body['messages'].length === 0) {
      return badRequest(reply, "'messages' must be a non-empty array", 'messages');
    }
    const model = body['model'];
    const stream = body['stream'] === true;
    const lastUserText = lastUserTextOfChat(body['messages']);
    const text = await answerScripted(reply, 'chat_completions', model, stream, lastUserText, body);
    if (text === null) return reply;
    const id = `chatcmpl-${randomBytes(12).toString('base64url')}`;
    const created = Math.floor(Date.now() / 1000);
    const promptTokens = approxTokens(JSON.stringify(body['messages']));
    const completionTokens = approxTokens(text);
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    };
    if (!stream) {
      return {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: text, refusal: null, annotations: [] },
            logprobs: null,
            finish_reason: 'stop',
          },
        ],
        usage,
        service_tier: 'default',
        system_fingerprint: FINGERPRINT,
      };
    }
    const opts = body['stream_options'] as Record<string, unknown> | undefined;
    const includeUsage = opts !== null && typeof opts === 'object' && opts['include_usage'] === true;
    const write = sse(reply);
    const chunk = (delta: Record<string, unknown>, finish: string | null) => {
      const c: Record<string, unknown> = {
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        service_tier: 'default',
        system_fingerprint: FINGERPRINT,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      };
      if (includeUsage) c['usage'] = null;
      return write(`data: ${JSON.stringify(c)}\n\n`);
    };
    chunk({ role: 'assistant', content: '', refusal: null }, null);
    for (const piece of chunkText(text)) {
      if (!chunk({ content: piece }, null)) return reply;
    }
    chunk({}, 'stop');
    if (includeUsage) {
      write(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: FINGERPRINT, choices: [], usage })}\n\n`,
      );
    }
    write('data: [DONE]\n\n');
    reply.raw.end();
    return reply;
  });

  app.post('/v1/responses', async (req, reply) => {
    if (!(await gate('responses', req, reply))) return reply;
    const body = req.body as Record<string, unknown> | null;
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return badRequest(reply, 'The request body must be a JSON object.', null);
    }
    if (typeof body['model'] !== 'string' || body['model'] === '') {
      return badRequest(reply, 'Missing required parameter: model.', 'model');
    }
    if (body['input'] === undefined) return badRequest(reply, 'Missing required parameter: input.', 'input');
    const model = body['model'];
    const stream = body['stream'] === true;
    const lastUserText = lastUserTextOfResponsesInput(body['input']);
    const text = await answerScripted(reply, 'responses', model, stream, lastUserText, body);
    if (text === null) return reply;
    const respId = `resp_${randomBytes(16).toString('hex')}`;
    const msgId = `msg_${randomBytes(16).toString('hex')}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const inputTokens = approxTokens(JSON.stringify(body['input']));
    const outputTokens = approxTokens(text);
    const part = (t: string) => ({ type: 'output_text', text: t, annotations: [], logprobs: [] });
    const item = (status: 'in_progress' | 'completed', content: unknown[]) => ({
      id: msgId,
      type: 'message',
      status,
      role: 'assistant',
      content,
    });
    const response = (status: 'in_progress' | 'completed', output: unknown[]) => ({
      id: respId,
      object: 'response',
      created_at: createdAt,
      status,
      background: false,
      error: null,
      incomplete_details: null,
      instructions: typeof body['instructions'] === 'string' ? body['instructions'] : null,
      max_output_tokens: null,
      model,
      output,
      parallel_tool_calls: true,
      previous_response_id: null,
      reasoning: { effort: null, summary: null },
      store: false,
      temperature: 1,
      text: { format: { type: 'text' } },
      tool_choice: 'auto',
      tools: [],
      top_p: 1,
      truncation: 'disabled',
      usage:
        status === 'completed'
          ? {
              input_tokens: inputTokens,
              input_tokens_details: { cached_tokens: 0 },
              output_tokens: outputTokens,
              output_tokens_details: { reasoning_tokens: 0 },
              total_tokens: inputTokens + outputTokens,
            }
          : null,
      user: null,
      metadata: {},
    });
    if (!stream) return response('completed', [item('completed', [part(text)])]);

    const write = sse(reply);
    let seq = 0;
    const event = (type: string, payload: Record<string, unknown>) =>
      write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...payload })}\n\n`);
    event('response.created', { response: response('in_progress', []) });
    event('response.in_progress', { response: response('in_progress', []) });
    event('response.output_item.added', { output_index: 0, item: item('in_progress', []) });
    event('response.content_part.added', {
      item_id: msgId,
      output_index: 0,
      content_index: 0,
      part: part(''),
    });
    for (const piece of chunkText(text)) {
      const ok = event('response.output_text.delta', {
        item_id: msgId,
        output_index: 0,
        content_index: 0,
        delta: piece,
        logprobs: [],
      });
      if (!ok) return reply;
    }
    event('response.output_text.done', {
      item_id: msgId,
      output_index: 0,
      content_index: 0,
      text,
      logprobs: [],
    });
    event('response.content_part.done', {
      item_id: msgId,
      output_index: 0,
      content_index: 0,
      part: part(text),
    });
    event('response.output_item.done', { output_index: 0, item: item('completed', [part(text)]) });
    event('response.completed', { response: response('completed', [item('completed', [part(text)])]) });
    reply.raw.end();
    return reply;
  });
}
