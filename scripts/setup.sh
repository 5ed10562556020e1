#!/usr/bin/env bash
# Creates .venv at the repository root and installs resnetlab with everything the tests use.
# Idempotent: a second run only checks. As root on Debian it also installs the offline data
# and the browser the report test uses (skipped, with a note, where apt-get is unavailable).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import resnetlab, torch, torchvision, onnxruntime, pytest, safetensors, pytorch_grad_cam, starlette, uvicorn, multipart" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[all]"
  touch .venv/.installed
fi

apt_install() {  # apt_install PACKAGE CHECK_PATH
  [ -e "$2" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq && APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
  else
    echo "note: $1 is not installed and this is not a root Debian shell: the tests that need it skip" >&2
  fi
}
apt_install dataset-fashion-mnist /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ "${1:-}" = "--with-browser" ]; then
  apt_install chromium /usr/bin/chromium
fi
