// llmos serve through OpenAI's official Node.js client: a chat, a streamed chat, a tool call and
// its answer, and the client's typed errors for an unknown model and a bad request.
// usage: node openai_test.mjs URL   (a server of the bundled llmos-chat model)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';

const url = process.argv[2];
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60000 });
const model = 'llmos-chat';
const question = [{ role: 'user', content: 'Who are you?' }];

test('a chat completion', async () => {
  const r = await client.chat.completions.create({ model, messages: question, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.match(r.choices[0].message.content, /llmos/);
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('a streamed chat completion says what the whole one says', async () => {
  const whole = await client.chat.completions.create({ model, messages: question, max_tokens: 24, temperature: 0 });
  const stream = await client.chat.completions.create({
    model, messages: question, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '', chunks = 0, finish = null, usage = null;
  for await (const chunk of stream) {
    chunks++;
    const c = chunk.choices[0];
    if (c?.delta?.content) text += c.delta.content;
    if (c?.finish_reason) finish = c.finish_reason;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks > 3, `${chunks} chunks`);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test('a tool call, answered by the client', async () => {
  const tools = [{
    type: 'function',
    function: {
      name: 'calculator', description: 'Evaluates an arithmetic expression.',
      parameters: { type: 'object', properties: { expression: { type: 'string' } }, required: ['expression'] },
    },
  }];
  const messages = [{ role: 'user', content: 'What is 123456789 * 987654321?' }];
  const r = await client.chat.completions.create({ model, messages, tools, temperature: 0 });
  const choice = r.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  const call = choice.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'calculator');
  const { expression } = JSON.parse(call.function.arguments);
  assert.equal(expression.replace(/\s/g, ''), '123456789*987654321');
  const product = (123456789n * 987654321n).toString();
  messages.push(choice.message, { role: 'tool', tool_call_id: call.id, content: product });
  const answer = await client.chat.completions.create({ model, messages, tools, temperature: 0 });
  assert.equal(answer.choices[0].finish_reason, 'stop');
  assert.match(answer.choices[0].message.content, new RegExp(product));
});

test('errors arrive as the client\'s typed errors', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: question }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && /does not exist/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model, messages: question, temperature: 7 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /temperature/.test(e.message));
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [model]);
});
