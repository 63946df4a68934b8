#!/usr/bin/env bash
# One run on the GPU machine (no cargo, no network) with the carried binary:
#  1. the candle CUDA probe (experiments/scripts/gpu/probe-cu13.xz) - do the kernels load?
#  2. CPU-vs-CUDA agreement of the logits (exp logits) and reward scores (exp score) of
#     the toy world's tiny models: f32 max |diff| <= 1e-4; bf16 max |diff| <= 0.05 *
#     max(1, max |value|) (bf16 keeps 8 mantissa bits: ~0.4% per rounding, summed over
#     a few layers)
#  3. the toy Section 4.1 pipeline end to end on CUDA:
#     `rmteach exp run experiments/configs/toy-4.1.toml --device cuda --out DIR`
#     (ASSUMES `exp run` has `--device` and `--out`; without them the step is skipped in
#     GPU mode and run with `--runs DIR` on the config's device in CPU mode)
#  4. speed of Pythia-1B- and Llama-3.2-1B-sized random-initialised models
#     (benches/lm/configs/*-1b.json), f32 and bf16: sampling tokens/s at batch 32, one
#     RLOO update, peak GPU memory (nvidia-smi, per process), side by side with PyTorch +
#     transformers on the same card, weights and inputs (benches/lm/run.py).
# A summary table is printed last and written to $OUT/gpu-check.md (with the speed table
# in $OUT/bench/table.md and every raw JSON beside it).
#
# On a machine without a GPU (or with --cpu) it runs the same steps on the CPU with tiny
# sizes and skips the probe, so the script itself is tested on the build machines.
#
#   experiments/scripts/gpu-check.sh --bin target/cuda/rmteach.xz          # GPU machine
#   experiments/scripts/gpu-check.sh --cpu --bin target/release/rmteach    # here
#
# Options / environment:
#   --bin PATH | RMTEACH_BIN    the rmteach binary, or its .xz (default: target/cuda/rmteach.xz
#                               if present, else target/release/rmteach)
#   --cpu                       force CPU mode (default: GPU mode iff nvidia-smi sees a GPU)
#   --out DIR | OUT             results (default: $OUT, else runs/gpu-check)
#   --python PATH | PEER_PYTHON Python with torch + transformers (default: /opt/torch/.venv/bin/python,
#                               else .cache/bench-lm-venv/bin/python, else python3)
#   --skip-pipeline             skip step 3
#   --pipeline                  run step 3 in CPU mode too (skipped there by default: the
#                               toy pipeline takes minutes on 2 cores and the tests cover it)
#   GPU_CHECK_WORK              scratch folder for models (default: a new mktemp -d)
#   GPU_CHECK_BATCH / _NEW_TOKENS / _REPS / _CONFIGS / _DTYPES   sizes of step 4
# Exit status 0 when every step that ran passed.
set -uo pipefail

usage() { sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

BIN=${RMTEACH_BIN:-}
MODE=auto
OUT_DIR=${OUT:-runs/gpu-check}
PY=${PEER_PYTHON:-}
SKIP_PIPELINE=
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=${2:?--bin needs a path}; shift 2 ;;
    --cpu) MODE=cpu; shift ;;
    --out) OUT_DIR=${2:?--out needs a folder}; shift 2 ;;
    --python) PY=${2:?--python needs a path}; shift 2 ;;
    --skip-pipeline) SKIP_PIPELINE=1; shift ;;
    --pipeline) SKIP_PIPELINE=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$MODE" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then MODE=gpu; else MODE=cpu; fi
fi
[ -z "$SKIP_PIPELINE" ] && { [ "$MODE" = gpu ] && SKIP_PIPELINE=0 || SKIP_PIPELINE=cpu; }
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd)
LOG="$OUT_DIR/gpu-check.log"
: >"$LOG"
say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

if [ -z "$PY" ]; then
  for c in /opt/torch/.venv/bin/python "$ROOT/.cache/bench-lm-venv/bin/python" python3; do
    if command -v "$c" >/dev/null 2>&1; then PY=$c; break; fi
  done
fi
if [ -z "$BIN" ]; then
  if [ -f target/cuda/rmteach.xz ] && [ "$MODE" = gpu ]; then BIN=target/cuda/rmteach.xz; else BIN=target/release/rmteach; fi
fi
[ -f "$BIN" ] || { echo "gpu-check.sh: no binary at '$BIN' (give --bin or RMTEACH_BIN)" >&2; exit 2; }
case "$BIN" in
  *.xz) xz -dc "$BIN" >"$WORK/rmteach" && chmod +x "$WORK/rmteach" && BIN="$WORK/rmteach" ;;
  *) BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN") ;;
esac

if [ "$MODE" = gpu ]; then
  DEV=cuda
  # The CUDA runtime, cuBLAS and cuRAND the binary needs come with the torch wheels.
  SP=$("$PY" -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null || true)
  [ -n "$SP" ] && export LD_LIBRARY_PATH="$SP/nvidia/cu13/lib:${LD_LIBRARY_PATH:-}"
  B_BATCH=${GPU_CHECK_BATCH:-32}; B_NEW=${GPU_CHECK_NEW_TOKENS:-64}; B_REPS=${GPU_CHECK_REPS:-2}
  B_CONFIGS=${GPU_CHECK_CONFIGS:-benches/lm/configs/pythia-1b.json,benches/lm/configs/llama-3.2-1b.json}
  B_DTYPES=${GPU_CHECK_DTYPES:-f32,bf16}
  B_PROMPT=32
else
  DEV=cpu
  export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
  B_BATCH=${GPU_CHECK_BATCH:-4}; B_NEW=${GPU_CHECK_NEW_TOKENS:-8}; B_REPS=${GPU_CHECK_REPS:-1}
  B_CONFIGS=${GPU_CHECK_CONFIGS:-benches/lm/configs/llama-5m.json,benches/lm/configs/neox-5m.json}
  B_DTYPES=${GPU_CHECK_DTYPES:-f32}
  B_PROMPT=8
fi
say "mode $MODE, binary $BIN, python $PY, out $OUT_DIR, scratch $WORK"

RESULTS=()
FAILED=0
record() { # step status detail
  RESULTS+=("| $1 | $2 | $3 |")
  [ "$2" = FAIL ] && FAILED=1
  say "$1: $2 - $3"
}

# 1. probe
if [ "$MODE" = gpu ]; then
  xz -dc experiments/scripts/gpu/probe-cu13.xz >"$WORK/probe" && chmod +x "$WORK/probe"
  if timeout 300 "$WORK/probe" >"$OUT_DIR/probe.txt" 2>&1; then
    record "1 probe" PASS "$(grep -c . "$OUT_DIR/probe.txt") lines, see probe.txt; $(tail -1 "$OUT_DIR/probe.txt")"
  else
    record "1 probe" FAIL "exit $?; $(tail -3 "$OUT_DIR/probe.txt" | tr '\n' ' ')"
  fi
else
  record "1 probe" SKIP "CPU mode"
fi

# 2. agreement of logits and reward scores, CPU f32 vs $DEV f32 and bf16
TOY="$WORK/toy-world"
if "$BIN" exp toy-world --out "$TOY" >>"$LOG" 2>&1; then
  IDS=1,5,9,13,17,21,25,29,3,7,11,15
  agree_ok=1
  detail=""
  for m in llama-toy gpt-neox-toy; do
    md="$TOY/models/$m"
    [ -d "$md" ] || { detail+="$m missing; "; agree_ok=0; continue; }
    for v in cpu:f32 $DEV:f32 $DEV:bf16; do
      d=${v%%:*}; t=${v##*:}
      "$BIN" exp logits --model "$md" --ids "$IDS" --device "$d" --dtype "$t" --out "$WORK/logits-$m-$d-$t.json" >>"$LOG" 2>&1 || { detail+="logits $m $v failed; "; agree_ok=0; }
    done
  done
  for v in cpu:f32 $DEV:f32 $DEV:bf16; do
    d=${v%%:*}; t=${v##*:}
    "$BIN" exp score --rm "$TOY/models/llama-toy-rm" --prompt "write three words about animals" --response "cat dog cow" \
      --device "$d" --dtype "$t" >"$WORK/score-$d-$t.txt" 2>>"$LOG" || { detail+="score $v failed; "; agree_ok=0; }
  done
  cmp=$("$PY" - "$WORK" "$DEV" <<'EOF'
import json, sys, os
work, dev = sys.argv[1], sys.argv[2]
out, ok = [], True
def diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b)), max([1.0] + [abs(x) for x in a])
for m in ("llama-toy", "gpt-neox-toy"):
    try:
        ref = [x for row in json.load(open(f"{work}/logits-{m}-cpu-f32.json"))["logits"] for x in row]
        for t, tol in (("f32", 1e-4), ("bf16", 0.05)):
            got = [x for row in json.load(open(f"{work}/logits-{m}-{dev}-{t}.json"))["logits"] for x in row]
            d, scale = diff(ref, got)
            lim = tol if t == "f32" else tol * scale
            ok &= len(ref) == len(got) and d <= lim
            out.append(f"{m} logits {t} {d:.1e} (<= {lim:.1e})")
    except Exception as e:
        ok = False; out.append(f"{m}: {e}")
try:
    s = {t: float(open(f"{work}/score-{d}-{t}.txt").read().split()[-1]) for d, t in (("cpu", "f32"),)}
    for t, tol in (("f32", 1e-4), ("bf16", 0.05)):
        g = float(open(f"{work}/score-{dev}-{t}.txt").read().split()[-1])
        lim = tol if t == "f32" else tol * max(1.0, abs(s["f32"]))
        d = abs(g - s["f32"]); ok &= d <= lim
        out.append(f"score {t} {d:.1e} (<= {lim:.1e})")
except Exception as e:
    ok = False; out.append(f"score: {e}")
print(("PASS" if ok else "FAIL") + "\t" + "; ".join(out))
EOF
)
  st=${cmp%%$'\t'*}; msg=${cmp#*$'\t'}
  [ "$agree_ok" = 1 ] || st=FAIL
  record "2 cpu vs $DEV agreement" "${st:-FAIL}" "$detail$msg"
else
  record "2 cpu vs $DEV agreement" FAIL "exp toy-world failed (see gpu-check.log)"
fi

# 3. toy 4.1 pipeline
if [ "$SKIP_PIPELINE" = 1 ]; then
  record "3 toy-4.1 pipeline" SKIP "--skip-pipeline"
elif [ "$SKIP_PIPELINE" = cpu ]; then
  record "3 toy-4.1 pipeline" SKIP "CPU mode (--pipeline runs it)"
else
  help=$("$BIN" exp run --help 2>&1)
  t0=$(date +%s)
  args=()
  if grep -q -- "--device" <<<"$help"; then args+=(--device "$DEV"); fi
  if grep -q -- "--out" <<<"$help"; then args+=(--out "$WORK/toy-4.1"); else args+=(--runs "$WORK/runs"); fi
  if [ "$MODE" = gpu ] && ! grep -q -- "--device" <<<"$help"; then
    record "3 toy-4.1 pipeline" SKIP "this binary's 'exp run' has no --device"
  elif "$BIN" exp run experiments/configs/toy-4.1.toml "${args[@]}" --quiet >>"$LOG" 2>&1; then
    rep=$(find "$WORK" -path '*report*' -name '*.md' | head -1)
    [ -n "$rep" ] && cp "$rep" "$OUT_DIR/toy-4.1-report.md"
    record "3 toy-4.1 pipeline" PASS "exp run ${args[*]} in $(($(date +%s) - t0)) s${rep:+; report copied to toy-4.1-report.md}"
  else
    record "3 toy-4.1 pipeline" FAIL "exp run ${args[*]} failed after $(($(date +%s) - t0)) s (see gpu-check.log)"
  fi
fi

# 4. speed vs PyTorch
t0=$(date +%s)
if "$PY" benches/lm/run.py --rmteach "$BIN" --python "$PY" --device "$DEV" --dtypes "$B_DTYPES" \
  --configs "$B_CONFIGS" --workloads sample,rloo --batch "$B_BATCH" --prompt-len "$B_PROMPT" \
  --response-len "$B_PROMPT" --new-tokens "$B_NEW" --reps "$B_REPS" --per-workload-process \
  --work "$WORK/bench" --out "$OUT_DIR/bench" --title "gpu-check speed ($MODE mode)" >>"$LOG" 2>&1; then
  record "4 speed vs torch" PASS "$(($(date +%s) - t0)) s; table below"
else
  record "4 speed vs torch" FAIL "$(($(date +%s) - t0)) s; see the table / gpu-check.log"
fi

{
  echo "## gpu-check ($MODE mode, $(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "| step | result | detail |"
  echo "| --- | --- | --- |"
  printf '%s\n' "${RESULTS[@]}"
  echo
  [ -f "$OUT_DIR/bench/table.md" ] && cat "$OUT_DIR/bench/table.md"
} >"$OUT_DIR/gpu-check.md"
echo
cat "$OUT_DIR/gpu-check.md"
[ -z "${GPU_CHECK_WORK:-}" ] && rm -rf "$WORK"
exit $FAILED
