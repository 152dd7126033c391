#!/usr/bin/env bash
# Set up the workbench in .venv at the repository root (the README's set-up command).
#
# - CPU machine (no nvidia-smi): installs the CPU build of torch first, so that nothing pulls
#   the multi-GB CUDA wheels; GPU machine: the registry's default (CUDA) torch.
# - open3d needs the system library libusb-1.0; installed with apt when missing and we are
#   root, otherwise we say what to install.
# - Chromium (Debian package) is installed when root, for the screenshot tests.
# Re-running is safe: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}

have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    [ -n "${_apt_updated:-}" ] || { apt-get update -qq; _apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    return 1
  fi
}

if ! have_lib libusb-1.0.so.0; then
  echo "setup: installing libusb-1.0-0 (needed by open3d)"
  apt_install libusb-1.0-0 || {
    echo "setup: open3d needs the system library libusb-1.0 and I am not root." >&2
    echo "       Install it (Debian/Ubuntu: sudo apt-get install libusb-1.0-0) and re-run." >&2
    exit 1
  }
fi
if ! command -v chromium >/dev/null; then
  echo "setup: installing chromium (headless screenshot tests)"
  apt_install chromium || echo "setup: chromium not installed (not root?); screenshot tests will be skipped"
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip

if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
  echo "setup: GPU found, installing the default (CUDA) torch"
  .venv/bin/python -m pip install -q torch
else
  echo "setup: no GPU, installing CPU torch ${TORCH_CPU_VERSION}"
  .venv/bin/python -m pip install -q "torch==${TORCH_CPU_VERSION}" \
    || .venv/bin/python -m pip install -q "torch==${TORCH_CPU_VERSION}" --index-url https://download.pytorch.org/whl/cpu
fi

.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python - <<'PY'
import open3d, torch, transformers, trl, peft, gradio, papermill  # noqa: F401 - fail here, not later
print(f"setup: ok (torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, open3d {open3d.__version__})")
PY
