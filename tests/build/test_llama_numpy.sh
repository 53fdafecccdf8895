#!/bin/sh
# The whole-model fp32 path (ml/block/model.c) against an independent NumPy reference
# (tests/ml/llama_ref.py, float64, reading the safetensors files itself): checkpoints written
# by kw_model_write, decoded greedily by kw_llama_run (8-token prompt, 32 tokens over the KV
# cache), then every block's output and every position's logits compared within 1e-4
# relative, and the generated tokens against the reference argmax. The int8 path must FAIL
# that fp32 tolerance (the comparison has teeth) and pass the int8 one (2e-2).
# Usage: test_llama_numpy.sh BUILD_DIR (with tools/model/kw_model_write and kw_llama_run built)
set -u
O=$1
W=$O/tools/model/kw_model_write
R=$O/tools/model/kw_llama_run
PY=/usr/bin/python3
REF=tests/ml/llama_ref.py
pass=0 fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
ko() { echo "FAIL - $1"; fail=$((fail + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

if [ ! -x "$R" ]; then
    echo "skip - no $R (CONFIG_KW_ML_BLOCK off)"
    exit 0
fi
if ! $PY -c 'import numpy' 2>/dev/null; then
    echo "FAIL - $PY cannot import numpy (Debian python3-numpy; tools/install-deps.sh installs it)"
    exit 1
fi

# name, writer flags
run() {
    name=$1 path=$2; shift 2
    mkdir -p "$tmp/$name-$path"
    [ -d "$tmp/$name" ] || $W --out "$tmp/$name" "$@" >/dev/null || { ko "$name: kw_model_write $*"; return 1; }
    $R --model "$tmp/$name" --out "$tmp/$name-$path" --path "$path" --gen 32 >/dev/null ||
        { ko "$name: kw_llama_run --path $path"; return 1; }
}

# the test model of test_llama_model (tiny, bf16, 2 shards, peaked lm_head)
if run tiny fp32 --lm-peak 2; then
    if $PY $REF "$tmp/tiny" "$tmp/tiny-fp32" > "$tmp/out" 2>&1; then
        ok "tiny bf16 2 shards, fp32 path matches NumPy within 1e-4: $(grep -h '^logits' "$tmp/out")"
    else
        cat "$tmp/out"; ko "tiny bf16, fp32 path vs NumPy"
    fi
fi
# random init throughout, f16, one file, 3 layers, multi-head (no grouping), 6 heads of 16
if run mha fp32 --lm-peak 0 --dtype f16 --shards 1 --layers 3 --hidden 96 --heads 6 --kv-heads 6 --seed 5; then
    if $PY $REF "$tmp/mha" "$tmp/mha-fp32" > "$tmp/out" 2>&1; then
        ok "f16 1 shard 3 layers MHA, fp32 path matches NumPy within 1e-4: $(grep -h '^logits' "$tmp/out")"
    else
        cat "$tmp/out"; ko "f16 MHA, fp32 path vs NumPy"
    fi
fi
# the int8 path is not within the fp32 tolerance, and is within the int8 one
if run tiny int8; then
    if $PY $REF "$tmp/tiny" "$tmp/tiny-int8" > "$tmp/out" 2>&1; then
        cat "$tmp/out"; ko "int8 path passed the 1e-4 fp32 tolerance: the comparison cannot tell"
    else
        ok "int8 path fails the fp32 tolerance as it must: $(grep -h '^logits' "$tmp/out")"
    fi
    if $PY $REF "$tmp/tiny" "$tmp/tiny-int8" --rtol 2e-2 > "$tmp/out" 2>&1; then
        ok "int8 path within 2e-2 of NumPy: $(grep -h '^greedy' "$tmp/out")"
    else
        cat "$tmp/out"; ko "int8 path vs NumPy within 2e-2"
    fi
fi
echo "test_llama_numpy: $pass passed, $fail failed"
[ $fail -eq 0 ]
