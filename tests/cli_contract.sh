#!/usr/bin/env bash
# The CLI contract used for verification outside the test suite:
# shoal logits/embed/run/info flags, output formats, exit codes, one-line errors.
set -u
BIN=${SHOAL_BIN:?}
FIX=${SHOAL_FIXTURES:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { fail=$((fail+1)); echo "FAIL: $*" >&2; }
M=$FIX/models
TOK=250,250,252,97,43,236,26,66,35,81,137,30

# logits: n_tokens x n_vocab little-endian f32, every position, vs the HF reference
"$BIN" logits -m "$M/llama-gqa/model-f32.gguf" --tokens $TOK --device cpu --out "$T/l.bin" && ok || bad "logits exit"
python3 - "$T/l.bin" "$M/llama-gqa/logits-f32.bin" <<'PY' && ok || bad "logits vs reference"
import sys, numpy as np
a = np.fromfile(sys.argv[1], "<f4"); r = np.fromfile(sys.argv[2], "<f4")
assert a.shape == r.shape == (12 * 256,), (a.shape, r.shape)
e = np.abs(a - r).max() / np.abs(r).max()
assert e <= 1e-4, e
PY

# embed: hidden_size f32 (mean-pooled, L2-normalised); --hidden n_tokens x hidden
"$BIN" embed -m "$M/bert/hf-f32" --tokens $TOK --out "$T/e.bin" --hidden "$T/h.bin" && ok || bad "embed exit"
python3 - "$T" "$M/bert" <<'PY' && ok || bad "embed vs reference"
import sys, numpy as np
t, m = sys.argv[1], sys.argv[2]
e = np.fromfile(t + "/e.bin", "<f4"); h = np.fromfile(t + "/h.bin", "<f4")
re = np.fromfile(m + "/embed-f32.bin", "<f4"); rh = np.fromfile(m + "/hidden-f32.bin", "<f4")
assert e.shape == (64,) and h.shape == (12 * 64,)
assert float(np.dot(e, re)) >= 0.9999
assert np.abs(h - rh).max() / np.abs(rh).max() <= 1e-4
PY

# run: generated ids on one line, space-separated == HF greedy continuation
out=$("$BIN" run -m "$M/qwen2/model-f32.gguf" --tokens $TOK -n 16 --temp 0 --print-ids --ignore-eos)
want=$(python3 -c "import json;print(' '.join(map(str,json.load(open('$M/qwen2/ref.json'))['greedy']['ids'])))")
[ "$out" = "$want" ] && ok || bad "run ids: got '$out' want '$want'"

# sampled generation is reproducible with a seed and differs across seeds
a=$("$BIN" run -m "$M/gpt2/model-f32.gguf" --tokens 1,2,3 -n 12 --temp 1.5 --top-k 40 --top-p 0.95 --min-p 0.01 --seed 7 --print-ids --ignore-eos)
b=$("$BIN" run -m "$M/gpt2/model-f32.gguf" --tokens 1,2,3 -n 12 --temp 1.5 --top-k 40 --top-p 0.95 --min-p 0.01 --seed 7 --print-ids --ignore-eos)
c=$("$BIN" run -m "$M/gpt2/model-f32.gguf" --tokens 1,2,3 -n 12 --temp 1.5 --top-k 40 --top-p 0.95 --min-p 0.01 --seed 8 --print-ids --ignore-eos)
[ "$a" = "$b" ] && ok || bad "same seed differs"
[ "$a" != "$c" ] && ok || bad "different seeds give the same 12 tokens"
# a stop id ends generation right after it is emitted
first=$(echo "$want" | cut -d' ' -f2)
out=$("$BIN" run -m "$M/qwen2/model-f32.gguf" --tokens $TOK -n 16 --print-ids --stop "$first")
[ "$out" = "$(echo "$want" | cut -d' ' -f1-2)" ] && ok || bad "stop id: got '$out'"

# info
"$BIN" info -m "$M/gpt2/hf-f16" --tensors > "$T/info.txt" && ok || bad "info exit"
grep -q "architecture: gpt2" "$T/info.txt" && grep -q "transformer.h.0.attn.c_attn.weight" "$T/info.txt" && ok || bad "info content"

# errors: non-zero status and exactly one line on stderr
expect_error() {
  local what=$1; shift
  "$@" >/dev/null 2>"$T/err"; local rc=$?
  local lines; lines=$(wc -l < "$T/err")
  if [ $rc -ne 0 ] && [ "$lines" -eq 1 ]; then ok; else bad "$what: rc=$rc, stderr: $(cat "$T/err")"; fi
}
printf 'GGUFjunk' > "$T/junk.gguf"
head -c 5000 "$M/llama-gqa/model-f32.gguf" > "$T/trunc.gguf"
expect_error "missing file"      "$BIN" logits -m "$T/nope.gguf" --tokens 1 --out "$T/x"
expect_error "junk file"         "$BIN" logits -m "$T/junk.gguf" --tokens 1 --out "$T/x"
expect_error "truncated file"    "$BIN" run -m "$T/trunc.gguf" --tokens 1
expect_error "token out of vocab" "$BIN" logits -m "$M/llama-gqa/model-f32.gguf" --tokens 1,999999 --out "$T/x"
expect_error "bad token list"    "$BIN" logits -m "$M/llama-gqa/model-f32.gguf" --tokens 1,,2 --out "$T/x"
expect_error "prompt too long"   "$BIN" logits -m "$M/gpt2/model-f32.gguf" --tokens "$(seq -s, 1 200)" --out "$T/x"
expect_error "unknown device"    "$BIN" logits -m "$M/gpt2/model-f32.gguf" --tokens 1 --device tpu --out "$T/x"
expect_error "unknown option"    "$BIN" run -m "$M/gpt2/model-f32.gguf" --tokens 1 --bogus
expect_error "encoder logits"    "$BIN" logits -m "$M/bert/model-f32.gguf" --tokens 1 --out "$T/x"
expect_error "unknown command"   "$BIN" frobnicate

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
