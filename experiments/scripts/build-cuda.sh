#!/usr/bin/env bash
# Build `rmteach` with `--features cuda` for an H100/H200 (compute capability 9.0) on a
# machine with NO GPU and NO system CUDA toolkit, from a fresh clone.
#
#   experiments/scripts/build-cuda.sh               # full release build -> stripped + xz binary
#   experiments/scripts/build-cuda.sh --check-only  # `cargo check` of the CUDA code paths, real nvcc
#   experiments/scripts/build-cuda.sh --check-stub  # the same check with a stand-in nvcc (CI:
#                                                   # no toolkit, no kernels compiled, minutes)
#   experiments/scripts/build-cuda.sh --kernels     # compile our kernels (experiments/kernels/*.cu)
#                                                   # to PTX with the real nvcc and assemble each
#                                                   # with ptxas for the target (registers, spills;
#                                                   # seconds, no cargo)
#
# What it does (each step is skipped when its result is already there, so a second run
# only costs cargo's no-op check):
#  1. Installs the CUDA 13.0 toolkit pieces candle 0.11.1 needs from PyPI wheels into a
#     cache folder (not system-wide): nvcc + crt + nvvm (candle-kernels compiles its PTX
#     at build time, so even `cargo check` needs nvcc), the runtime, cccl headers, nvrtc,
#     curand and cublas. Versions are pinned to 13.0.x: the GPU machine's driver 580
#     speaks CUDA 13.0 and rejects PTX from a newer nvcc; cudarc 0.19.10 rejects nvcc > 13.4.
#  2. Writes link-time-only helpers into $CUDA_HOME/lib/stubs: a stub libcuda.so
#     (soname libcuda.so.1) exporting every cu* symbol of cudarc's driver bindings, and
#     unversioned .so symlinks for the wheels' versioned libraries. The real libcuda.so.1
#     comes from the NVIDIA driver on the GPU machine at run time.
#  3. Builds with CUDA_COMPUTE_CAP=90 in its own target directory (the CPU build in
#     target/ is left alone), strips the binary, compresses it with xz and prints where
#     it is, which shared libraries it needs and how to run it on the GPU machine.
#
# Environment (all optional):
#   RMTEACH_CUDA_CACHE   cache folder for the wheels      (default: <repo>/.cache/cuda13)
#   RMTEACH_CUDA_TARGET  cargo target directory           (default: <repo>/target/cuda)
#   CUDA_COMPUTE_CAP     compute capability, no dot       (default: 90 = H100/H200)
#   PYTHON               a Python 3 with pip               (default: python3)
# Needs: bash, cargo, python3 with pip, gcc, strip, xz, readelf, network to PyPI and crates.io
# on the first run.
set -euo pipefail

usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; }

MODE=build
for arg in "$@"; do
  case "$arg" in
    --check-only) MODE=check ;;
    --check-stub) MODE=stub ;;
    --kernels) MODE=kernels ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-cuda.sh: unknown argument '$arg' (expected --check-only, --check-stub, --kernels or --help)" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${RMTEACH_CUDA_CACHE:-$ROOT/.cache/cuda13}
TARGET=${RMTEACH_CUDA_TARGET:-$ROOT/target/cuda}
PYTHON=${PYTHON:-python3}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
# cudarc's driver bindings: the version Cargo.lock pins (the stub libcuda is generated from it).
CUDARC_VERSION=0.19.10

log() { echo "[build-cuda] $*" >&2; }
die() { echo "[build-cuda] error: $*" >&2; exit 1; }

for tool in cargo gcc; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH"
done
if [ "$MODE" = build ]; then
  for tool in strip xz readelf; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH"
  done
fi

# ---- 0) --check-stub: type-check the CUDA code paths without a CUDA toolkit ----------
# `cargo check` links nothing and never runs a kernel, so nvcc's *outputs* do not matter,
# only that the build scripts succeed: a stand-in nvcc answers `--version` as CUDA 13.0
# and writes empty PTX/object files. Every Rust path behind the `cuda` feature (candle's,
# cudarc's and ours) is still compiled and type-checked; no kernel is. Minutes, no downloads.
if [ "$MODE" = stub ]; then
  FAKE=$CACHE/stub-nvcc
  mkdir -p "$FAKE/bin" "$FAKE/include" "$FAKE/lib/stubs"
  cat > "$FAKE/bin/nvcc" <<'NVCC'
#!/usr/bin/env bash
# Stand-in nvcc for `cargo check --features cuda` (experiments/scripts/build-cuda.sh --check-stub).
out=""; dir=""; srcs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --version) # cudarc's build script reads the 4th line, as real nvcc prints it.
               printf '%s\n' "nvcc: NVIDIA (R) Cuda compiler driver (rmteach check stub)" \
                 "Copyright (c) NVIDIA Corporation" "Built on (stub)" \
                 "Cuda compilation tools, release 13.0, V13.0.88" "Build cuda_13.0.stub"
               exit 0 ;;
    --list-gpu-code) echo "sm_90"; exit 0 ;;
    -o) out=$2; shift ;;
    --output-directory) dir=$2; shift ;;
    *.cu) srcs+=("$1") ;;
  esac
  shift
done
if [ -n "$dir" ]; then for s in "${srcs[@]}"; do : > "$dir/$(basename "$s" .cu).ptx"; done; fi
if [ -n "$out" ]; then : > "$out"; fi
exit 0
NVCC
  chmod +x "$FAKE/bin/nvcc"
  export PATH=$FAKE/bin:$PATH CUDA_HOME=$FAKE CUDA_PATH=$FAKE NVCC=$FAKE/bin/nvcc
  export CARGO_TARGET_DIR=${RMTEACH_CUDA_TARGET:-$ROOT/target/cuda-check}
  cd "$ROOT"
  START=$(date +%s)
  cargo check -p rmteach-cli -p rmteach-experiments --all-targets --features cuda
  log "cargo check --features cuda (stub nvcc) passed in $(( $(date +%s) - START )) s"
  exit 0
fi

# ---- 1) CUDA 13.0 wheels -------------------------------------------------------------
WHEELS=(
  "nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-crt==13.0.88" "nvidia-nvvm==13.0.88"
  "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85" "nvidia-cuda-nvrtc==13.0.88"
  "nvidia-curand==10.4.0.35" "nvidia-cublas==13.1.0.3"
)
CU=$CACHE/site/nvidia/cu13
STAMP=$CACHE/wheels.stamp
if [ ! -x "$CU/bin/nvcc" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "${WHEELS[*]}" ]; then
  "$PYTHON" -m pip --version >/dev/null 2>&1 || die "'$PYTHON -m pip' does not work (set PYTHON=...)"
  log "installing CUDA 13.0 wheels into $CACHE/site (once; ~1 GB download)"
  rm -rf "$CACHE/site" "$STAMP"
  mkdir -p "$CACHE"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    --target "$CACHE/site" "${WHEELS[@]}"
  [ -x "$CU/bin/nvcc" ] || die "nvcc missing after the wheel install ($CU/bin/nvcc)"
  echo "${WHEELS[*]}" > "$STAMP"
else
  log "CUDA wheels already in $CACHE/site"
fi

# ---- 1b) --kernels: our kernels through nvcc and ptxas only ------------------------------
# The same nvcc flags as experiments/build.rs (cudaforge adds the arch, --ptx and
# --default-stream per-thread); ptxas then assembles the PTX for the target as the
# driver's JIT would, so errors and register spills show here, not on the GPU machine.
if [ "$MODE" = kernels ]; then
  KOUT=${RMTEACH_KERNELS_OUT:-$ROOT/target/cuda-kernels}
  mkdir -p "$KOUT"
  export PATH=$CU/bin:$PATH
  status=0
  for cu in "$ROOT"/experiments/kernels/*.cu; do
    name=$(basename "$cu" .cu)
    if ! "$CU/bin/nvcc" -gencode "arch=compute_$CUDA_COMPUTE_CAP,code=sm_$CUDA_COMPUTE_CAP" --ptx \
        --default-stream per-thread -std=c++17 -O3 -o "$KOUT/$name.ptx" "$cu"; then
      log "nvcc failed on $cu"; status=1; continue
    fi
    if ! "$CU/bin/ptxas" -arch="sm_$CUDA_COMPUTE_CAP" -v -o "$KOUT/$name.cubin" "$KOUT/$name.ptx" \
        2> "$KOUT/$name.ptxas.txt"; then
      cat "$KOUT/$name.ptxas.txt" >&2; log "ptxas failed on $KOUT/$name.ptx"; status=1; continue
    fi
    # One line per kernel: its name, registers and any spill.
    awk '/Compiling entry function/ {fn=$0; sub(/.*entry function \x27/, "", fn); sub(/\x27.*/, "", fn)}
         /Used [0-9]+ registers/ {sub(/.*Used /, ""); printf "  %-40s %s\n", fn, $0}
         /bytes spill/ && !/0 bytes spill stores, 0 bytes spill loads/ {print "  spill in " fn ": " $0}' \
      "$KOUT/$name.ptxas.txt"
    log "$name.cu: nvcc + ptxas (sm_$CUDA_COMPUTE_CAP) passed"
  done
  exit $status
fi

# ---- 2) link-time stubs ---------------------------------------------------------------
STUBS=$CU/lib/stubs
if [ ! -f "$STUBS/libcuda.so" ]; then
  # cudarc's sources: `cargo metadata` downloads and unpacks them if they are not there yet.
  CUDARC_SRC=$(cd "$ROOT" && cargo metadata --format-version 1 --features rmteach-cli/cuda 2>/dev/null |
    "$PYTHON" -c 'import json,sys,os
v=sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    if p["name"]=="cudarc" and p["version"]==v: print(os.path.dirname(p["manifest_path"]))' "$CUDARC_VERSION")
  SYS_RS=$CUDARC_SRC/src/driver/sys/mod.rs
  [ -n "$CUDARC_SRC" ] && [ -f "$SYS_RS" ] ||
    die "cudarc $CUDARC_VERSION sources not found (is it still the version in Cargo.lock?)"
  mkdir -p "$STUBS"
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+\(' "$SYS_RS" |
    sed -E 's/pub unsafe fn ([A-Za-z0-9_]+)\(/\1/' | sort -u |
    awk '{print "int "$1"(void){return 999;}"}' > "$STUBS/libcuda_stub.c"
  [ -s "$STUBS/libcuda_stub.c" ] || die "no cu* symbols found in $SYS_RS"
  gcc -shared -fPIC -o "$STUBS/libcuda.so.tmp" -Wl,-soname,libcuda.so.1 "$STUBS/libcuda_stub.c"
  mv "$STUBS/libcuda.so.tmp" "$STUBS/libcuda.so"
  log "stub libcuda.so with $(wc -l < "$STUBS/libcuda_stub.c") symbols in $STUBS"
fi
for l in cublas.so.13 cublasLt.so.13 curand.so.10 nvrtc.so.13 cudart.so.13; do
  [ -e "$CU/lib/lib$l" ] || die "$CU/lib/lib$l missing from the wheels"
  ln -sfn "../lib$l" "$STUBS/lib${l%.so.*}.so"
done

# ---- 3) environment for cudarc's and candle-kernels' build scripts --------------------
# cudarc's build.rs runs `nvcc --version` from PATH and adds $CUDA_HOME/lib{,/stubs} to the
# link search; candle-kernels (cudaforge) finds nvcc through NVCC and takes the target from
# CUDA_COMPUTE_CAP instead of asking nvidia-smi.
export PATH=$CU/bin:$PATH
export CUDA_HOME=$CU CUDA_PATH=$CU
export NVCC=$CU/bin/nvcc
export CARGO_TARGET_DIR=$TARGET
log "nvcc: $(nvcc --version | tail -1); CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP; target dir $TARGET"

cd "$ROOT"
START=$(date +%s)
if [ "$MODE" = check ]; then
  # --release: the profile of the full build, so the two share candle-kernels'
  # build-script output (the nvcc compilation of its kernels, most of the time).
  cargo check --release -p rmteach-cli -p rmteach-experiments --all-targets --features cuda
  log "cargo check --features cuda passed in $(( $(date +%s) - START )) s"
  exit 0
fi

cargo build --release -p rmteach-cli --features cuda
log "cargo build took $(( $(date +%s) - START )) s"

# ---- 4) strip + xz (only when the binary changed) -------------------------------------
BIN=$TARGET/release/rmteach
DIST=$TARGET/dist
mkdir -p "$DIST"
if [ ! -f "$DIST/rmteach.xz" ] || [ "$BIN" -nt "$DIST/rmteach.xz" ]; then
  strip -o "$DIST/rmteach.tmp" "$BIN"
  mv "$DIST/rmteach.tmp" "$DIST/rmteach"
  xz -k -f -T0 "$DIST/rmteach"
  touch "$DIST/rmteach.xz"
fi

size() { du -h "$1" | cut -f1; }
echo
echo "CUDA build of rmteach (compute capability $CUDA_COMPUTE_CAP, CUDA 13.0):"
echo "  stripped:   $DIST/rmteach ($(size "$DIST/rmteach"))"
echo "  compressed: $DIST/rmteach.xz ($(size "$DIST/rmteach.xz"))"
echo "  NEEDED:     $(readelf -d "$DIST/rmteach" | sed -nE 's/.*Shared library: \[(.*)\]/\1/p' | tr '\n' ' ')"
cat <<'EOF'
On the GPU machine (driver >= 580; libcuda.so.1 comes from the driver, the other CUDA
libraries from the cu13 wheels of its PyTorch environment):
  SP=$(/opt/torch/.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')
  export LD_LIBRARY_PATH=$SP/nvidia/cu13/lib:${LD_LIBRARY_PATH:-}
  xz -d -k rmteach.xz && chmod +x rmteach
  ./rmteach exp inspect --model MODEL_DIR --device cuda --dtype bf16
EOF
