#!/usr/bin/env bash
# Text in and out through the CLI on a fixture model (llama-mha-tied, HF
# folder) given a 256-token byte-level tokenizer (tests/fixtures/textmodel):
# tokenize matches Hugging Face tokenizers, run -p streams exactly the text
# of the greedy ids, ends with a stats line, and chat answers over stdin.
set -u
BIN=${SHOAL_BIN:?}
FIX=${SHOAL_FIXTURES:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
M=$T/model
mkdir -p "$M"
cp "$FIX/models/llama-mha-tied/hf-f32/"* "$M/"
cp "$FIX/textmodel/tokenizer.json" "$M/"
TEXT='Hello, wörld 🙂'
ids=$("$BIN" tokenize -m "$M" --text "$TEXT") && ok || bad "tokenize exit"
want=$(python3 -c "import sys;from tokenizers import Tokenizer;print(' '.join(map(str,Tokenizer.from_file('$M/tokenizer.json').encode(sys.argv[1]).ids)))" "$TEXT")
[ -n "$want" ] && [ "$ids" = "$want" ] && ok || bad "tokenize: '$ids' vs HF '$want'"
# run -p: the streamed text is the decode of the greedy continuation of those ids
"$BIN" run -m "$M" -p "$TEXT" -n 12 --ignore-eos > "$T/out.txt" 2> "$T/err.txt" && ok || bad "run -p exit: $(cat "$T/err.txt")"
grep -qE "^\[prompt [0-9]+ tokens, generated 12 tokens, [0-9.]+ tok/s\]$" "$T/err.txt" && ok || bad "stats line: $(cat "$T/err.txt")"
gen=$("$BIN" run -m "$M" --tokens "$(echo "$ids" | tr ' ' ',')" -n 12 --print-ids --ignore-eos)
python3 - "$M/tokenizer.json" "$T/out.txt" $gen <<'PY' && ok || bad "streamed text != decode(greedy ids)"
import sys, json
vocab = json.load(open(sys.argv[1]))["model"]["vocab"]
inv = {v: k for k, v in vocab.items()}
# byte-level: map each symbol back to its byte
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]; n = 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + n); n += 1
dec = {chr(c): b for b, c in zip(bs, cs)}
raw = bytes(dec[ch] for i in sys.argv[3:] for ch in inv[int(i)])
want = raw.decode("utf-8", "replace")
got = open(sys.argv[2], encoding="utf-8", errors="strict").read()
assert got == want + "\n", (got, want)
PY
# chat: two turns over stdin, plain template, exits 0 and prints two replies
printf 'hi there\nand again\n' | "$BIN" chat -m "$M" --template plain -n 6 --ignore-eos > "$T/chat.txt" 2> "$T/chat.err" && ok || bad "chat exit: $(cat "$T/chat.err")"
[ "$(wc -l < "$T/chat.txt")" -ge 2 ] && ok || bad "chat replies: $(cat "$T/chat.txt")"
# errors: a model without a tokenizer, an unknown chat template
"$BIN" run -m "$FIX/models/llama-gqa/model-f32.gguf" -p "hi" >/dev/null 2>"$T/e1"; [ $? -ne 0 ] && [ "$(wc -l < "$T/e1")" -eq 1 ] && ok || bad "no tokenizer: $(cat "$T/e1")"
echo hi | "$BIN" chat -m "$M" --template nope >/dev/null 2>"$T/e2"; [ $? -ne 0 ] && ok || bad "unknown template accepted"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
