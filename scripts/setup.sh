#!/usr/bin/env bash
# Set up the workbench in .venv at the repository root (the README's set-up command).
#
# - CPU machine (no nvidia-smi): installs the CPU build of torch first, so that nothing pulls
#   the multi-GB CUDA wheels; GPU machine: the registry's default (CUDA) torch.
# - open3d needs the system library libusb-1.0; installed with apt when missing and we are
#   root, otherwise we say what to install.
# - Chromium (Debian package) is installed when root, for the screenshot tests.
# - Everything else comes from requirements/lock.txt (exact versions for Python 3.11 on Linux
#   x86_64; regenerate with scripts/lock.sh), installed after torch; then the project itself,
#   editable and with --no-deps, so pip cannot move a locked version; then a consistency check.
# Re-running is safe: it only installs what is missing or differs from the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
# The torch release requirements/lock.txt was resolved against (see scripts/lock.sh), for both
# the CPU and the CUDA build. (TORCH_CPU_VERSION is the older name of this setting.)
TORCH_VERSION=${TORCH_VERSION:-${TORCH_CPU_VERSION:-2.13.0}}
LOCK=requirements/lock.txt

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
.venv/bin/python -c 'import sys; sys.version_info[:2] == (3, 11) or print("setup: warning: .venv has Python",
  sys.version.split()[0], "but", sys.argv[1], "was resolved for Python 3.11", file=sys.stderr)' "$LOCK"
.venv/bin/python -m pip install -q --upgrade pip

if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
  echo "setup: GPU found, installing the default (CUDA) torch ${TORCH_VERSION}"
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}"
else
  echo "setup: no GPU, installing CPU torch ${TORCH_VERSION}"
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}" \
    || .venv/bin/python -m pip install -q "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
fi

# Exactly the locked set (torch is not in it), then the project; --no-deps on both, so pip
# neither adds an unlocked package nor moves a locked version.
echo "setup: installing ${LOCK} and the project (editable)"
.venv/bin/python -m pip install -q --no-deps -r "$LOCK"
.venv/bin/python -m pip install -q --no-deps -e .
# Sanity: every requirement satisfied, and every locked package at exactly its locked version.
.venv/bin/python -m pip check || {
  echo "setup: the environment is inconsistent (pip check above); is ${LOCK} out of date? Run scripts/lock.sh" >&2
  exit 1
}
.venv/bin/python - "$LOCK" <<'PY'
import re, sys
from importlib.metadata import PackageNotFoundError, version
bad = []
for line in open(sys.argv[1]):
    m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
    if m:
        name, want = m.groups()
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "missing"
        if have != want:
            bad.append(f"{name}: locked {want}, installed {have}")
if bad:
    sys.exit("setup: .venv does not match " + sys.argv[1] + ":\n  " + "\n  ".join(bad))
PY
# JupyterLab: no "Build Recommended" dialog. open3d's dash dependency installs an old-style source
# extension (@plotly/dash-jupyterlab) that asks for a rebuild on every launch; the prebuilt
# extensions the notebooks use need none. Merged into the page config JupyterLab reads first.
.venv/bin/python - <<'PY'
import json, pathlib
path = pathlib.Path(".venv/etc/jupyter/labconfig/page_config.json")
config = json.loads(path.read_text()) if path.exists() else {}
config.update(buildCheck=False, buildAvailable=False)
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(config, indent=2) + "\n")
PY
# ... and no "Would you like to get notified about official Jupyter news?" toast on first launch
# (the news feed would need the internet anyway): a default setting in the environment's overrides.
.venv/bin/python - <<'PY'
import json, pathlib
path = pathlib.Path(".venv/share/jupyter/lab/settings/overrides.json")
overrides = json.loads(path.read_text()) if path.exists() else {}
overrides.setdefault("@jupyterlab/apputils-extension:notification", {}).update(fetchNews="false", checkForUpdates=False)
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(overrides, indent=2) + "\n")
PY
.venv/bin/python - <<'PY'
import open3d, torch, transformers, trl, peft, gradio, papermill  # noqa: F401 - fail here, not later
print(f"setup: ok (torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, open3d {open3d.__version__})")
PY
