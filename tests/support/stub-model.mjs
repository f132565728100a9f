// A model at the network boundary for OpenCode: an OpenAI-compatible `POST
// /v1/chat/completions` that answers every request with the same short text (streamed as
// `chat.completion.chunk`s when asked to stream), or with a scripted tool call, and records
// every request body, so a test can see what reached the model. `openCodeBin()` finds opencode-ai 1.18.33 where `npm run dev`
// installs it (node_modules/.bin/opencode), or at OPENCODE_BIN.

import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ROOT } from './server.mjs';

export function openCodeBin() {
  const bin = process.env.OPENCODE_BIN || path.join(ROOT, 'node_modules', '.bin', 'opencode');
  return existsSync(bin) ? bin : null;
}

/** The names of the tools a request offers the model. */
export const toolNames = (request) => (request.tools ?? []).map((t) => t.function?.name ?? t.name).filter(Boolean);

/**
 * `script(request)` may return `{ tool, args }` to answer with a call of that tool instead of
 * text (OpenCode runs it and asks again with its result).
 */
export async function startStubModel({ answer = 'Understood, stub model here.', script = () => null } = {}) {
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.method !== 'POST' || !req.url.endsWith('/chat/completions')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"not found"}}');
        return;
      }
      let json = {};
      try {
        json = JSON.parse(body);
      } catch {
        // recorded as empty
      }
      requests.push(json);
      const id = `chatcmpl-${requests.length}`;
      const created = Math.floor(Date.now() / 1000);
      if (!json.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          id, object: 'chat.completion', created, model: 'stub-model',
          choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      const chunk = (delta, finish = null, extra = {}) =>
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: 'stub-model', choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
      const call = script(json);
      if (call) {
        res.write(chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: `call_${requests.length}`, type: 'function', function: { name: call.tool, arguments: JSON.stringify(call.args) } }] }));
        res.write(chunk({}, 'tool_calls', { usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
        res.end('data: [DONE]\n\n');
        return;
      }
      res.write(chunk({ role: 'assistant', content: '' }));
      for (const word of answer.split(/(?<= )/)) res.write(chunk({ content: word }));
      res.write(chunk({}, 'stop', { usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const baseURL = `http://127.0.0.1:${port}/v1`;
  return {
    answer,
    requests,
    baseURL,
    /** What OpenCode needs to use this model as `stub/stub-model` (an opencode.json fragment). */
    providerConfig: {
      model: 'stub/stub-model',
      provider: { stub: { npm: '@ai-sdk/openai-compatible', options: { baseURL, apiKey: 'x' }, models: { 'stub-model': {} } } },
    },
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}
