#!/usr/bin/env bash
# Opt-in build of libethos_nccl.so, the NCCL backend of ethos-dist (`train.dist_backend: nccl`).
#
# ethos links only libtorch_cpu; the NCCL process group lives in libtorch_cuda, so its shim is a
# separate shared library that ethos dlopens after libtorch_cuda.so (CPU-only machines still start).
# ProcessGroupNCCL.hpp needs CUDA headers the torch wheel does not ship: this script pip-installs
# the wheels torch 2.11 pins (NCCL 2.28.9 and cu13 cuBLAS/cuSPARSE/cuSOLVER/CCCL/crt; about 1 GB,
# headers only are used) into a folder, then compiles against them.
#
#   scripts/build_nccl_shim.sh [OUT_DIR]      (default: target/nccl)
#
# Environment: LIBTORCH (default: .libtorch/torch), ETHOS_NCCL_HEADERS (wheel folder, default
# .nccl-headers), CXX (default: g++), PYTHON (default: python3). At run time ethos finds the library
# at $ETHOS_NCCL_SHIM, next to the executable, in ../nccl/ beside it, or beside libtorch_cpu.so.
set -euo pipefail
cd "$(dirname "$0")/.."

LIBTORCH="${LIBTORCH:-$PWD/.libtorch/torch}"
OUT="${1:-target/nccl}"
HEADERS="${ETHOS_NCCL_HEADERS:-$PWD/.nccl-headers}"
CXX="${CXX:-g++}"
PYTHON="${PYTHON:-python3}"
WHEELS=(
  nvidia-nccl-cu13==2.28.9
  nvidia-cuda-runtime==13.0.96
  nvidia-cublas==13.1.0.3
  nvidia-cusparse==12.6.3.3
  nvidia-cusolver==12.0.4.66
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-crt==13.0.88
)

if [ ! -f "$LIBTORCH/lib/libtorch_cuda.so" ]; then
  echo "build_nccl_shim: $LIBTORCH/lib/libtorch_cuda.so not found: LIBTORCH must be a CUDA build" >&2
  exit 2
fi
if [ ! -f "$HEADERS/.complete" ]; then
  echo "build_nccl_shim: installing header wheels into $HEADERS" >&2
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --target "$HEADERS" "${WHEELS[@]}"
  touch "$HEADERS/.complete"
fi

INCLUDES=(-I crates/ethos-dist/cpp -I "$LIBTORCH/include" -I "$LIBTORCH/include/torch/csrc/api/include")
for d in "$HEADERS"/nvidia/*/include; do
  INCLUDES+=(-I "$d")
done

mkdir -p "$OUT"
tmp="$OUT/libethos_nccl.so.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$CXX" -std=c++17 -O2 -fPIC -shared -fvisibility=hidden -Wno-interference-size \
  -D_GLIBCXX_USE_CXX11_ABI=1 -DGLOG_USE_GLOG_EXPORT -DUSE_DISTRIBUTED -DUSE_C10D_NCCL -DUSE_CUDA \
  "${INCLUDES[@]}" crates/ethos-dist/cpp/ethos_nccl.cpp \
  -L "$LIBTORCH/lib" -Wl,-rpath,"$LIBTORCH/lib" -Wl,--no-as-needed \
  -ltorch_cuda -lc10_cuda -ltorch_cpu -lc10 \
  -o "$tmp"
mv -f "$tmp" "$OUT/libethos_nccl.so"
trap - EXIT
if ! nm -D --defined-only "$OUT/libethos_nccl.so" | grep -q ' ethos_pg_nccl_new$'; then
  echo "build_nccl_shim: $OUT/libethos_nccl.so does not export ethos_pg_nccl_new" >&2
  exit 1
fi
echo "build_nccl_shim: built $OUT/libethos_nccl.so (export ETHOS_NCCL_SHIM=$(cd "$OUT" && pwd)/libethos_nccl.so)" >&2
