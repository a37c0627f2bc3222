// A bounded load test of `llmos serve` on loopback: C clients stream chat completions back to
// back for S seconds (then finish what is in flight), and it reports the requests, the failures,
// the tokens generated per second over all clients, and the time to the first token (p50, p99).
// Node.js 18+ (its fetch); no packages.
//
// usage: node bench/serve_load.mjs URL [--clients 8] [--seconds 60] [--max-tokens 128] [--label L]
// Prints one JSON object.

const args = process.argv.slice(2);
const opt = { clients: 8, seconds: 60, 'max-tokens': 128, label: '' };
let url = null;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '-h' || a === '--help') {
    console.log('usage: node bench/serve_load.mjs URL [--clients 8] [--seconds 60] [--max-tokens 128] [--label L]');
    process.exit(0);
  } else if (a.startsWith('--') && a.slice(2) in opt) {
    if (i + 1 >= args.length) { console.error(`${a} needs a value`); process.exit(2); }
    opt[a.slice(2)] = a === '--label' ? args[++i] : Number(args[++i]);
  } else if (!url) {
    url = a;
  } else {
    console.error(`unexpected argument ${a}`);
    process.exit(2);
  }
}
if (!url || !/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(url)) {
  console.error('a loopback URL is required, e.g. http://127.0.0.1:8080');
  process.exit(2);
}
for (const k of ['clients', 'seconds', 'max-tokens']) {
  if (!Number.isInteger(opt[k]) || opt[k] < 1 || opt[k] > 100000) { console.error(`--${k} must be a positive integer`); process.exit(2); }
}

const questions = [
  'Tell me a story about a dragon.', 'Who are you?', 'What is the weather like in spring?',
  'Write a poem about the sea.', 'How do birds fly?', 'Tell me about your favourite book.',
  'What should I cook tonight?', 'Explain what a computer does.', 'Why is the sky blue?',
  'Tell me a story about a cat and a dog.',
];

const ttft = [];
let requests = 0, failed = 0, tokens = 0;
const errors = new Map();
const fail = (why) => { failed++; errors.set(why, (errors.get(why) || 0) + 1); };

// One streamed request; adds its tokens and time to first token, or counts a failure.
async function one(client, n) {
  const t0 = performance.now();
  const body = {
    messages: [{ role: 'user', content: questions[(client + n) % questions.length] }],
    max_tokens: opt['max-tokens'], temperature: 0.8, seed: client * 100003 + n, stream: true,
  };
  let res;
  try {
    res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
  } catch (e) { fail(`fetch: ${e.cause?.code || e.message}`); return; }
  if (res.status !== 200) { fail(`HTTP ${res.status}`); await res.text().catch(() => {}); return; }
  let buf = '', first = null, usage = null, done = false, finish = null;
  const dec = new TextDecoder();
  try {
    for await (const chunk of res.body) {
      buf += dec.decode(chunk, { stream: true });
      let k;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, k);
        buf = buf.slice(k + 2);
        if (!event.startsWith('data: ')) continue;
        const data = event.slice(6);
        if (data === '[DONE]') { done = true; continue; }
        const j = JSON.parse(data);
        const c = j.choices?.[0];
        if (first === null && c?.delta?.content) first = performance.now();
        if (c?.finish_reason) finish = c.finish_reason;
        if (j.usage) usage = j.usage;
      }
    }
  } catch (e) { fail(`stream: ${e.message}`); return; }
  if (!done || !usage || finish === 'error') { fail(`incomplete stream (finish ${finish})`); return; }
  requests++;
  tokens += usage.completion_tokens;
  if (first !== null) ttft.push(first - t0);
}

const start = performance.now(), deadline = start + opt.seconds * 1000;
async function client(c) {
  for (let n = 0; performance.now() < deadline; n++) await one(c, n);
}
await Promise.all(Array.from({ length: opt.clients }, (_, c) => client(c)));
const seconds = (performance.now() - start) / 1000;
ttft.sort((a, b) => a - b);
const pct = (p) => (ttft.length ? ttft[Math.min(ttft.length - 1, Math.floor((p / 100) * ttft.length))] : null);
const round = (x) => (x === null ? null : Math.round(x * 10) / 10);
console.log(JSON.stringify({
  label: opt.label, clients: opt.clients, seconds: round(seconds), requests, failed,
  errors: Object.fromEntries(errors), completion_tokens: tokens, tokens_per_s: round(tokens / seconds),
  ttft_ms_p50: round(pct(50)), ttft_ms_p99: round(pct(99)),
}));
process.exit(failed ? 1 : 0);
