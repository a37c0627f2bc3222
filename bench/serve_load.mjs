// A bounded load test of `llmos serve` on loopback: C clients stream chat completions back to
// back for S seconds (then finish what is in flight), and it reports the requests, the failures,
// the tokens generated per second over all clients, and the time to the first token (p50, p99).
// Given several servers, each gets S seconds in all, in R rounds taken in turn (A B A B ...), so
// a machine whose speed drifts during the run weighs on each alike.
// Node.js 18+ (its fetch); no packages.
//
// usage: node bench/serve_load.mjs URL [URL ...] [--clients 8] [--seconds 60] [--rounds 6]
//                                  [--max-tokens 128] [--labels A,B]
// Prints one JSON object per server.

const args = process.argv.slice(2);
const opt = { clients: 8, seconds: 60, rounds: 6, 'max-tokens': 128, labels: '' };
const urls = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '-h' || a === '--help') {
    console.log('usage: node bench/serve_load.mjs URL [URL ...] [--clients 8] [--seconds 60] [--rounds 6] [--max-tokens 128] [--labels A,B]');
    process.exit(0);
  } else if (a.startsWith('--') && a.slice(2) in opt) {
    if (i + 1 >= args.length) { console.error(`${a} needs a value`); process.exit(2); }
    opt[a.slice(2)] = a === '--labels' ? args[++i] : Number(args[++i]);
  } else if (a.startsWith('-')) {
    console.error(`unknown option ${a}`);
    process.exit(2);
  } else {
    urls.push(a);
  }
}
if (!urls.length || urls.some((u) => !/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(u))) {
  console.error('loopback URLs are required, e.g. http://127.0.0.1:8080');
  process.exit(2);
}
for (const k of ['clients', 'seconds', 'rounds', 'max-tokens']) {
  if (!Number.isInteger(opt[k]) || opt[k] < 1 || opt[k] > 100000) { console.error(`--${k} must be a positive integer`); process.exit(2); }
}

const questions = [
  'Tell me a story about a dragon.', 'Who are you?', 'What is the weather like in spring?',
  'Write a poem about the sea.', 'How do birds fly?', 'Tell me about your favourite book.',
  'What should I cook tonight?', 'Explain what a computer does.', 'Why is the sky blue?',
  'Tell me a story about a cat and a dog.',
];

// Per server: what its rounds added up to.
const labels = opt.labels ? opt.labels.split(',') : urls;
const servers = urls.map((url, i) => ({ url, label: labels[i] ?? url, ttft: [], requests: 0, failed: 0, tokens: 0, seconds: 0, errors: new Map() }));

// One streamed request; adds its tokens and time to first token, or counts a failure.
async function one(sv, client, n) {
  const fail = (why) => { sv.failed++; sv.errors.set(why, (sv.errors.get(why) || 0) + 1); };
  const t0 = performance.now();
  const body = {
    messages: [{ role: 'user', content: questions[(client + n) % questions.length] }],
    max_tokens: opt['max-tokens'], temperature: 0.8, seed: client * 100003 + n, stream: true,
  };
  let res;
  try {
    res = await fetch(`${sv.url}/v1/chat/completions`, {
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
  sv.requests++;
  sv.tokens += usage.completion_tokens;
  if (first !== null) sv.ttft.push(first - t0);
}

// A round: the clients load one server for its share of the time, then finish what is in flight.
async function round(sv, seconds) {
  const start = performance.now(), deadline = start + seconds * 1000;
  const client = async (c) => { for (let n = 0; performance.now() < deadline; n++) await one(sv, c, n); };
  await Promise.all(Array.from({ length: opt.clients }, (_, c) => client(c)));
  sv.seconds += (performance.now() - start) / 1000;
}

const rounds = urls.length > 1 ? opt.rounds : 1;
for (let r = 0; r < rounds; r++)
  for (const sv of servers) await round(sv, opt.seconds / rounds);

const round1 = (x) => (x === null ? null : Math.round(x * 10) / 10);
let failed = 0;
for (const sv of servers) {
  sv.ttft.sort((a, b) => a - b);
  const pct = (p) => (sv.ttft.length ? sv.ttft[Math.min(sv.ttft.length - 1, Math.floor((p / 100) * sv.ttft.length))] : null);
  failed += sv.failed;
  console.log(JSON.stringify({
    label: sv.label, clients: opt.clients, rounds, seconds: round1(sv.seconds), requests: sv.requests, failed: sv.failed,
    errors: Object.fromEntries(sv.errors), completion_tokens: sv.tokens, tokens_per_s: round1(sv.tokens / sv.seconds),
    ttft_ms_p50: round1(pct(50)), ttft_ms_p99: round1(pct(99)),
  }));
}
process.exit(failed ? 1 : 0);
