#!/usr/bin/env bash
# llmos serve: the OpenAI-compatible API over HTTP on loopback, driven with curl, with the bundled
# assistant. Chat completions (whole and streamed), a client tool call and its answer, the
# endpoints, OpenAI-shaped errors for bad requests, the API key, a client that leaves mid-stream,
# and a clean stop.
# Usage: serve_test.sh LLMOS MODELS_DIR
set -u
llmos=$1
model=$2/llmos-chat/llmos-chat.gguf
tmp=$(mktemp -d)
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT

# start NAME ARGS...: a server on a free port; sets $url
start() {
  local name=$1
  shift
  "$llmos" serve "$model" --port 0 -t 2 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 1 100); do
    grep -q 'listening on' "$tmp/$name.out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$tmp/$name.out")
  [ -n "$url" ] || { echo "FAIL: the server did not start: $(cat "$tmp/$name.err")"; exit 1; }
}
# post PATH BODY: the response body in $tmp/r, the status in $code
post() { code=$(curl -s -o "$tmp/r" -w '%{http_code}' "$url$1" -H 'Content-Type: application/json' --data-binary "$2"); }

"$llmos" serve --help | grep -q '^usage: llmos serve' && ok || bad "serve --help"
"$llmos" serve "$model" --port 70000 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "serve with a bad port"

# Prompts are read 8 tokens a step: below the GEMM's batch size every token's prefill sums exactly
# as decoding does, so answers do not depend on where chunks or cached prefixes end, and the
# batched server below can be compared with this one token for token.
start main --prefill-chunk 8
main_url=$url
[ "$(curl -s "$url/health")" = '{"status":"ok"}' ] && ok || bad "/health"
curl -s "$url/v1/models" | jq -e '.data[0].id == "llmos-chat"' >/dev/null && ok || bad "/v1/models"

# A whole answer.
post /v1/chat/completions '{"model": "llmos-chat", "messages": [{"role": "user", "content": "Who are you?"}], "max_tokens": 20, "temperature": 0}'
if [ "$code" = 200 ] && jq -e '.object == "chat.completion" and (.choices[0].message.content | test("llmos"))
    and .usage.completion_tokens == 20 and .choices[0].finish_reason == "length"' "$tmp/r" >/dev/null; then ok
else bad "chat completion: $code $(cat "$tmp/r")"; fi

# Streamed: role first, then content deltas, the finish reason with usage, then [DONE].
curl -sN "$url/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "Who are you?"}], "max_tokens": 12, "temperature": 0, "stream": true}' >"$tmp/s"
if [ "$(grep -c '^data: {' "$tmp/s")" -eq 14 ] && [ "$(tail -n 2 "$tmp/s" | head -1)" = "data: [DONE]" ] &&
   sed -n 's/^data: \({.*\)/\1/p' "$tmp/s" | jq -s -e '.[0].choices[0].delta.role == "assistant"
     and ([.[].choices[0].delta.content // ""] | add | test("llmos"))
     and .[-1].choices[0].finish_reason == "length" and .[-1].usage.completion_tokens == 12' >/dev/null; then ok
else bad "streamed chat completion: $(head -c 600 "$tmp/s")"; fi

# A client's tool: the call comes back as tool_calls; the client's result gets the answer.
tools='[{"type": "function", "function": {"name": "calculator", "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}}}}]'
post /v1/chat/completions '{"messages": [{"role": "user", "content": "What is 123456789 * 987654321?"}], "tools": '"$tools"', "temperature": 0}'
if [ "$code" = 200 ] && jq -e '.choices[0].finish_reason == "tool_calls"
    and .choices[0].message.tool_calls[0].function.name == "calculator"
    and (.choices[0].message.tool_calls[0].function.arguments | fromjson | .expression == "123456789 * 987654321")' \
    "$tmp/r" >/dev/null; then ok
else bad "client tool call: $code $(cat "$tmp/r")"; fi
call=$(jq -c '.choices[0].message' "$tmp/r")
id=$(jq -r '.choices[0].message.tool_calls[0].id' "$tmp/r")
post /v1/chat/completions '{"messages": [{"role": "user", "content": "What is 123456789 * 987654321?"}, '"$call"',
  {"role": "tool", "tool_call_id": "'"$id"'", "content": "121932631112635269"}], "tools": '"$tools"', "temperature": 0}'
if [ "$code" = 200 ] && jq -e '.choices[0].finish_reason == "stop"
    and (.choices[0].message.content | test("121932631112635269"))' "$tmp/r" >/dev/null; then ok
else bad "answer from a client's tool result: $code $(cat "$tmp/r")"; fi
# ... and streamed, the call arrives as a tool_calls delta.
curl -sN "$url/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "What is 123456789 * 987654321?"}], "tools": '"$tools"', "temperature": 0, "stream": true}' >"$tmp/s"
if sed -n 's/^data: \({.*\)/\1/p' "$tmp/s" | jq -s -e '([.[].choices[0].delta.tool_calls // empty] | .[0][0].function.name == "calculator")
     and .[-1].choices[0].finish_reason == "tool_calls"' >/dev/null; then ok
else bad "streamed client tool call: $(head -c 600 "$tmp/s")"; fi

# Stop sequences: the answer ends before the first, in whole answers and streams alike.
post /v1/chat/completions '{"messages": [{"role": "user", "content": "Who are you?"}], "max_tokens": 40, "temperature": 0, "stop": ["Large", "llmos."]}'
if [ "$code" = 200 ] && jq -e '.choices[0].message.content == "Hello! I am " and .choices[0].finish_reason == "stop"' "$tmp/r" >/dev/null; then ok
else bad "stop sequences: $code $(cat "$tmp/r")"; fi
curl -sN "$url/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "Who are you?"}], "max_tokens": 40, "temperature": 0, "stop": "llmos.", "stream": true}' >"$tmp/s"
if sed -n 's/^data: \({.*\)/\1/p' "$tmp/s" | jq -s -e '([.[].choices[0].delta.content // ""] | add) == "Hello! I am "
     and .[-1].choices[0].finish_reason == "stop"' >/dev/null; then ok
else bad "streamed stop sequence: $(head -c 600 "$tmp/s")"; fi

# A plain completion continues the prompt exactly as llmos run does.
post /v1/completions '{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}'
want=$("$llmos" run "$model" -p "Once upon a time" -n 12 --temp 0 2>/dev/null)
if [ "$code" = 200 ] && [ "Once upon a time$(jq -r '.choices[0].text' "$tmp/r")" = "$want" ] &&
   jq -e '.object == "text_completion" and .usage.completion_tokens == 12' "$tmp/r" >/dev/null; then ok
else bad "completion: $code $(cat "$tmp/r"), llmos run: $want"; fi

# The chat page, compiled in, loading nothing from elsewhere.
curl -s -D "$tmp/h" "$url/" -o "$tmp/page"
if cmp -s "$tmp/page" "$2/../src/server/chat_page.html" && grep -qi "^content-security-policy: default-src 'none'" "$tmp/h"; then ok
else bad "the chat page at /"; fi

# Bad requests: OpenAI's error shape and the right status.
check_error() { # WANT_CODE WHAT BODY
  post /v1/chat/completions "$3"
  if [ "$code" = "$1" ] && jq -e '.error.message | length > 0' "$tmp/r" >/dev/null; then ok; else bad "$2: $code $(cat "$tmp/r")"; fi
}
check_error 400 "malformed JSON" '{"messages": ['
check_error 400 "not an object" '[1, 2]'
check_error 400 "missing messages" '{"temperature": 0}'
check_error 400 "messages of the wrong type" '{"messages": "hi"}'
check_error 400 "temperature of the wrong type" '{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}'
check_error 400 "max_tokens of the wrong type" '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -3}'
check_error 400 "a max_tokens past any integer" '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e300}'
check_error 400 "an unknown role" '{"messages": [{"role": "root", "content": "hi"}]}'
check_error 400 "content of the wrong type" '{"messages": [{"role": "user", "content": 5}]}'
check_error 404 "an unknown model" '{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}'
check_error 400 "too many stop sequences" '{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}'
check_error 400 "a stop of the wrong type" '{"messages": [{"role": "user", "content": "hi"}], "stop": 7}'
check_error 400 "n > 1" '{"messages": [{"role": "user", "content": "hi"}], "n": 2}'
post /v1/completions '{"prompt": ["a", "b"]}'
[ "$code" = 400 ] && ok || bad "a completion without a string prompt: $code"
head -c 2000000 /dev/zero | tr '\0' ' ' >"$tmp/big"
code=$(curl -s -o "$tmp/r" -w '%{http_code}' "$url/v1/chat/completions" --data-binary @"$tmp/big")
[ "$code" = 413 ] && ok || bad "a huge body: $code"
code=$(curl -s -o "$tmp/r" -w '%{http_code}' "$url/v1/nothing")
[ "$code" = 404 ] && jq -e '.error.code == "unknown_url"' "$tmp/r" >/dev/null && ok || bad "an unknown route: $code"
code=$(curl -s -o "$tmp/r" -w '%{http_code}' -X DELETE "$url/v1/models")
[ "$code" = 405 ] && ok || bad "a wrong method: $code"

# A client that leaves mid-stream: its generation stops, and the next request is answered.
timeout 1 curl -sN "$url/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 400, "stream": true}' | head -c 300 >/dev/null
post /v1/chat/completions '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}'
[ "$code" = 200 ] && ok || bad "a request after a client left: $code $(cat "$tmp/r")"
if curl -s "$url/metrics" | grep -q '^llmos_requests_total{code="4xx"} [1-9]' && curl -s "$url/metrics" | grep -q '^llmos_completion_tokens_total [1-9]'; then ok
else bad "/metrics: $(curl -s "$url/metrics")"; fi

# A slow client (slowloris): a request that never finishes is cut off after --timeout, and the
# server goes on serving.
start slow --timeout 2
exec 3<>"/dev/tcp/127.0.0.1/${url##*:}"
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"mess' >&3
sleep 3.5
# cut off: the server has closed the connection, so reading it ends at once (no answer)
if timeout 2 cat <&3 >"$tmp/slow" 2>/dev/null && [ ! -s "$tmp/slow" ]; then ok; else bad "the slow client was not cut off"; fi
exec 3<&-
post /v1/chat/completions '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}'
[ "$code" = 200 ] && ok || bad "a request after a slow client: $code"

# The API key: required when set (but not for /health), compared whole.
start keyed --api-key s3cret
code=$(curl -s -o "$tmp/r" -w '%{http_code}' "$url/v1/models")
[ "$code" = 401 ] && jq -e '.error.code == "invalid_api_key"' "$tmp/r" >/dev/null && ok || bad "no API key: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cre' "$url/v1/models")
[ "$code" = 401 ] && ok || bad "a key's prefix: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret' "$url/v1/models")
[ "$code" = 200 ] && ok || bad "the right API key: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health")
[ "$code" = 200 ] && ok || bad "/health without a key: $code"
# a body without the key is refused as such, even past the size cap (it is never kept)
code=$(curl -s -o "$tmp/r" -w '%{http_code}' "$url/v1/chat/completions" --data-binary @"$tmp/big")
[ "$code" = 401 ] && ok || bad "a huge body without the key: $code"
code=$(curl -s -o "$tmp/r" -w '%{http_code}' -H 'Authorization: Bearer s3cret' "$url/v1/chat/completions" \
  -d '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}')
[ "$code" = 200 ] && ok || bad "a chat completion with the key: $code $(cat "$tmp/r")"

# Model output is any bytes (at temperature 2 the model writes byte tokens that never complete a
# character); what the server sends is valid UTF-8 JSON all the same.
valid=0
for seed in 1 2 3; do
  curl -s "$main_url/v1/completions" -d '{"prompt": "Once", "max_tokens": 300, "temperature": 2, "seed": '$seed'}' >"$tmp/u"
  curl -sN "$main_url/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 300, "temperature": 2, "seed": '$seed', "stream": true}' >>"$tmp/u"
  grep -q '"finish_reason":"length"' "$tmp/u" && iconv -f UTF-8 -t UTF-8 "$tmp/u" >/dev/null 2>&1 && valid=$((valid + 1))
done
[ "$valid" -eq 3 ] && ok || bad "output that is not valid UTF-8 ($valid of 3 valid)"

# Continuous batching: with 4 slots decoding together, seven greedy requests sent at once (chats of
# different lengths, a completion, a stream, a client's tool call, a prompt of 400 tokens read 8 a
# step while the others stream; some wait for a slot and join mid-way) get the same answers as
# from the one-slot server, one at a time; a client that leaves mid-stream meanwhile frees its slot.
long=$(printf 'The little cat sat on the warm mat and looked at the bright moon. %.0s' $(seq 25))
bodies=(
  '{"messages": [{"role": "user", "content": "Who are you?"}], "max_tokens": 40, "temperature": 0}'
  '{"messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Tell me a story about a cat."}], "max_tokens": 64, "temperature": 0}'
  '{"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 9, "temperature": 0}'
  '{"messages": [{"role": "user", "content": "What is 123456789 * 987654321?"}], "tools": '"$tools"', "temperature": 0}'
  '{"messages": [{"role": "user", "content": "Write a poem."}], "max_tokens": 30, "temperature": 0, "stream": true}'
  '{"prompt": "Once upon a time", "max_tokens": 50, "temperature": 0}'
  '{"messages": [{"role": "user", "content": "'"$long"'What did the cat look at?"}], "max_tokens": 30, "temperature": 0}'
)
# answer FILE: the text (or the tool call) of a response, whole or streamed
answer() {
  if grep -q '^data: ' "$1"; then sed -n 's/^data: \({.*\)/\1/p' "$1" | jq -s -c '[.[].choices[0].delta.content // ""] | add'
  else jq -c '.choices[0] | (if .message.tool_calls then (.message.tool_calls | map(.function)) else (.message.content // .text) end)' "$1"; fi
}
for i in "${!bodies[@]}"; do
  path=/v1/chat/completions; case ${bodies[$i]} in '{"prompt"'*) path=/v1/completions ;; esac
  curl -sN "$main_url$path" -d "${bodies[$i]}" >"$tmp/one_$i"
done
start par --parallel 4 --prefill-chunk 8
clients=()
curl -sN -m 1 "$url/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100000, "stream": true}' >/dev/null &
clients+=($!)
for i in "${!bodies[@]}"; do
  path=/v1/chat/completions; case ${bodies[$i]} in '{"prompt"'*) path=/v1/completions ;; esac
  curl -sN "$url$path" -d "${bodies[$i]}" >"$tmp/par_$i" &
  clients+=($!)
done
wait "${clients[@]}"
same=0
for i in "${!bodies[@]}"; do
  a=$(answer "$tmp/one_$i") b=$(answer "$tmp/par_$i")
  if [ -n "$a" ] && [ "$a" != null ] && [ "$a" = "$b" ]; then same=$((same + 1)); else echo "  request $i: alone $a, batched $b"; fi
done
[ "$same" -eq "${#bodies[@]}" ] && ok || bad "batched answers differ from one-at-a-time answers ($same of ${#bodies[@]} equal)"
curl -s "$url/metrics" | grep -q '^llmos_requests_running 0' && ok || bad "slots still busy after the batch: $(curl -s "$url/metrics")"
post /v1/chat/completions '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}'
[ "$code" = 200 ] && ok || bad "a request after the batch: $code"

# The queue: with one slot held by a long answer (a random model with a 32k context, greedy, so
# it never ends its turn) and a queue of one, a second request waits, a third gets 503; the
# waiting client leaves, the first is cut off, and the server is idle and answers again.
"$llmos" init --dim 64 --layers 1 --heads 1 --ffn 64 --context 32768 --vocab-from "$model" -q -o "$tmp/long.gguf"
saved_model=$model model=$tmp/long.gguf
start queue --parallel 1 --queue 1 --max-tokens 100000 -c 32768
model=$saved_model
metric() { curl -s "$url/metrics" | sed -n "s/^llmos_requests_$1 //p"; }
# wait_metric NAME VALUE: up to 10 s
wait_metric() { for _ in $(seq 1 100); do [ "$(metric "$1")" = "$2" ] && return 0; sleep 0.1; done; return 1; }
curl -sN "$url/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 30000, "temperature": 0, "stream": true}' >/dev/null &
holder=$!
wait_metric running 1 && ok || bad "the long answer did not take the slot"
curl -sN -m 2 "$url/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "stream": true}' >"$tmp/queued" &
waiter=$!
wait_metric queued 1 && ok || bad "the second request is not waiting: queued $(metric queued)"
post /v1/chat/completions '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}'
[ "$code" = 503 ] && jq -e '.error.code == "queue_full"' "$tmp/r" >/dev/null && ok || bad "a full queue: $code $(cat "$tmp/r")"
wait "$waiter" 2>/dev/null # it leaves after 2 s, still waiting
[ ! -s "$tmp/queued" ] && ok || bad "the waiting client got an answer: $(head -c 200 "$tmp/queued")"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
wait_metric running 0 && wait_metric queued 0 && ok || bad "slots or queue still busy: running $(metric running), queued $(metric queued)"
post /v1/chat/completions '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "temperature": 0}'
[ "$code" = 200 ] && jq -e '.usage.completion_tokens == 3' "$tmp/r" >/dev/null && ok || bad "a request after the queue emptied: $code"

# A clean stop on SIGTERM.
kill -TERM "${pids[2]}"
wait "${pids[2]}"
rc=$?
[ "$rc" -eq 0 ] && grep -q 'stopped' "$tmp/keyed.out" && ok || bad "stop on SIGTERM: exit $rc"

echo "serve: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
