#!/usr/bin/env bash
# Installs what ethos needs to build and run on Debian/Ubuntu:
#   - FFmpeg development libraries (ffmpeg-next links the system FFmpeg), the ffmpeg CLI (tests compare
#     against it), clang (bindgen), fonts for report plots, chromium + chromium-driver (the review
#     pages' browser tests drive headless chromium);
#   - libtorch 2.11.0 from the PyPI torch wheel into ./.libtorch (CPU use; ~1.2 GB), unless LIBTORCH
#     already points at a libtorch (an existing PyTorch install or a libtorch download).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
APT_PACKAGES=(ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev
  libavdevice-dev libswresample-dev pkg-config clang libclang-dev
  libfontconfig1-dev libfreetype6-dev fonts-dejavu-core python3-pip chromium chromium-driver)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -n "${LIBTORCH:-}" ]; then
  echo "setup: using LIBTORCH=$LIBTORCH" >&2
elif [ -f .libtorch/torch/lib/libtorch_cpu.so ] && [ -d .libtorch/torch-${TORCH_VERSION}.dist-info ]; then
  echo "setup: libtorch ${TORCH_VERSION} present in .libtorch" >&2
else
  echo "setup: installing libtorch ${TORCH_VERSION} (PyPI torch wheel, no Python deps) into .libtorch" >&2
  rm -rf .libtorch
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target .libtorch \
    "torch==${TORCH_VERSION}" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
fi
