#!/usr/bin/env bash
# The exact recipe of models/llmos-chat/llmos-chat.gguf: every step is llmos itself (plus jq, sed and
# coreutils for the data files). Run from the repository root after scripts/build.sh:
#
#   models/llmos-chat/recipe.sh [WORK_DIR] [STAGE...]
#
# Stages, in order (default: all): data tokenizer pretrain sft pairs dpo tooldata tools final eval.
# Each stage writes into WORK_DIR (default /tmp/llmos-chat) and the next one reads it, so a stage can
# be rerun alone. Training is deterministic for a given seed: the same commands give the same model.
# The log of the run that made the committed model is models/llmos-chat/recipe.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/llmos-chat}
shift || true
stages=${*:-data tokenizer pretrain sft pairs dpo tooldata tools final eval}
llmos=${LLMOS:-build/llmos}
shared=${LLMOS_SHARED_DATA:-../shared/data}
here=models/llmos-chat
threads=2
mkdir -p "$work"

has() { [[ " $stages " == *" $1 "* ]]; }
stamp() { echo "== $(date -u +%FT%TZ) $*"; }

if has data; then
  stamp "data: identity conversations renamed, pre-training text, the SFT mix"
  "$here/data.sh" "$shared" "$work"
fi

if has tokenizer; then
  # Byte-level BPE, 4096 tokens, with ChatML's control tokens from the start (so SFT need not grow it).
  stamp "tokenizer"
  $llmos tokenizer train "$work"/pretrain/*.txt --vocab 4096 \
    --special '<|endoftext|>' --special '<|im_start|>' --special '<|im_end|>' -q -o "$work/tok.gguf"
  $llmos data prepare --tokenizer "$work/tok.gguf" "$work"/pretrain/*.txt -o "$work/data" --val-fraction 0.02 -q
fi

if has pretrain; then
  # 6 layers, dim 256, 4 heads of 64, ffn 768, context 512: about 6.8 M parameters; 1300 steps of 4096 tokens
  # (5.3 M tokens, about 2.4 passes over the 2.25 M training tokens).
  stamp "pretrain"
  $llmos train --data "$work/data" --tokenizer "$work/tok.gguf" --dim 256 --layers 6 --heads 4 --kv-heads 4 \
    --ffn 768 --context 512 --batch 8 --max-steps 1300 --lr 1.5e-3 --warmup 60 --eval-every 100 --eval-batches 8 \
    --checkpoint-every 200 --seed 1 -t $threads --json-log "$work/pretrain.jsonl" -o "$work/base.gguf"
fi

if has sft; then
  # The loss on the assistant's tokens only; ChatML is written into the model.
  stamp "sft"
  $llmos sft "$work/base.gguf" "$work/sft.jsonl" --context 512 --batch 8 --max-steps 500 --lr 5e-4 \
    --val-fraction 0.05 --checkpoint-every 100 --seed 1 -t $threads --json-log "$work/sft.log.jsonl" -o "$work/sft.gguf"
fi

if has pairs; then
  # Preference pairs for DPO: the first question of each identity conversation, the written answer
  # (chosen) against an answer the SFT model samples itself (rejected, temperature 1). The held-out
  # conversations give the held-out pairs, which DPO never trains on.
  stamp "pairs"
  for split in train heldout; do
    jq -r '.[0].content | gsub("\n"; " ")' "$work/identity_$split.jsonl" >"$work/prompts_$split.txt"
    rm -rf "$work/gen_$split" && mkdir -p "$work/gen_$split"
    awk -v dir="$work/gen_$split" '{ printf "%s\n/save %s/%05d.jsonl\n/reset\n", $0, dir, NR }' "$work/prompts_$split.txt" |
      $llmos chat "$work/sft.gguf" --temp 1 --seed 7 -n 160 -t $threads >/dev/null 2>"$work/gen_$split.log"
    # File NNNNN.jsonl holds the answer to line NNNNN's question.
    jq -c -n --slurpfile id "$work/identity_$split.jsonl" 'inputs as $c
        | (input_filename | capture("(?<n>[0-9]+)[.]jsonl$").n | tonumber) as $n
        | {prompt: $id[$n - 1][0].content, chosen: $id[$n - 1][1].content, rejected: ($c.messages[1].content // "")}' \
      "$work/gen_$split"/*.jsonl >"$work/pairs_$split.jsonl"
    echo "pairs_$split: $(wc -l <"$work/pairs_$split.jsonl")"
  done
  cat "$work/pairs_train.jsonl" "$work/pairs_heldout.jsonl" >"$work/pairs.jsonl"
fi

if has dpo; then
  # The held-out fraction is exactly the 100 held-out conversations' pairs (the last lines).
  stamp "dpo"
  frac=$(awk -v h="$(wc -l <"$work/pairs_heldout.jsonl")" -v n="$(wc -l <"$work/pairs.jsonl")" 'BEGIN { printf "%.6f", h / n }')
  $llmos dpo "$work/sft.gguf" "$work/pairs.jsonl" --val-fraction "$frac" --beta 0.1 --context 384 --batch 8 \
    --max-steps 150 --lr 2e-5 --eval-every 25 --seed 1 -t $threads --json-log "$work/dpo.log.jsonl" -o "$work/dpo.gguf"
fi

if has tooldata; then
  # Arithmetic through the calculator, GSM8K's annotated steps as calculator calls, questions
  # answered from a folder of documents through search, and some of the SFT mix (tools_data.sh).
  stamp "tooldata"
  "$here/tools_data.sh" "$llmos" "$shared" "$work"
fi

if has tools; then
  # The chat template with tool calls (chat_template.jinja) is written into the model; sft adds
  # <tool_call> and </tool_call> to the vocabulary as control tokens.
  stamp "tools"
  $llmos sft "$work/dpo.gguf" "$work/tools/mix.jsonl" --template "$here/chat_template.jinja" --context 512 --batch 8 \
    --max-steps 1100 --lr 8e-4 --warmup 60 --val-fraction 0.02 --eval-every 100 --checkpoint-every 100 --seed 1 \
    -t $threads --json-log "$work/tools.log.jsonl" -o "$work/tools.gguf"
  # The first stage wears the assistant's talk down (held-out identity loss 2.20 -> 2.68); a shorter
  # stage at a lower rate on all of the SFT mix and a quarter of the tool sets brings it back.
  stamp "tools: replay"
  $llmos sft "$work/tools.gguf" "$work/tools/replay.jsonl" --context 512 --batch 8 --max-steps 400 --lr 3e-4 \
    --warmup 20 --val-fraction 0.02 --eval-every 100 --checkpoint-every 100 --seed 1 -t $threads \
    --json-log "$work/tools2.log.jsonl" -o "$work/tools2.gguf"
fi

if has final; then
  stamp "final: Q8_0"
  $llmos quantize "$work/tools2.gguf" "$here/llmos-chat.gguf" Q8_0
  ls -l "$here/llmos-chat.gguf"
fi

if has eval; then
  stamp "eval: assistant-token loss on the 100 held-out identity conversations (never trained on)"
  for m in base sft dpo tools tools2; do
    echo "$m: $($llmos perplexity "$work/$m.gguf" --conversations "$work/identity_heldout.jsonl" -c 512 -t $threads | tr '\n' ' ')"
  done
  echo "final (Q8_0): $($llmos perplexity "$here/llmos-chat.gguf" --conversations "$work/identity_heldout.jsonl" -c 512 -t $threads | tr '\n' ' ')"
  stamp "eval: echo 'Who are you?' | llmos chat $here/llmos-chat.gguf --temp 0"
  echo "Who are you?" | $llmos chat "$here/llmos-chat.gguf" --temp 0 -n 120 -t $threads
  for q in "What is llmos?" "Who made you?" "Tell me a story about a cat." "What is 12 plus 30?"; do
    echo "> $q"
    echo "$q" | $llmos chat "$here/llmos-chat.gguf" --temp 0 -n 120 -t $threads
  done
  stamp "eval: tool use (tools_eval.sh): 500 held-out arithmetic questions with and without the calculator, GSM8K test calls"
  "$here/tools_eval.sh" "$llmos" "$here/llmos-chat.gguf" "$work/tools" "$work/tools_eval"
  echo "> What is the population of Belstead? (--tools search over the towns)"
  echo "What is the population of Belstead?" |
    $llmos chat "$here/llmos-chat.gguf" --tools calculator,search --tool-folder "$work/tools/towns" --temp 0 -n 60 -t $threads
fi
