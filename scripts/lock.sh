#!/usr/bin/env bash
# Regenerate requirements/lock.txt: the exact (==) version of every package the project needs
# (pyproject.toml's [project] dependencies plus the `dev` extra), for CPython 3.11 (any 3.11.x)
# on Linux x86_64 with glibc >= 2.35 (manylinux_2_35: open3d 0.19+ ships no older wheels;
# Ubuntu 22.04+, Debian 12+), resolved from PyPI with `uv pip compile`.
#
# torch is NOT in the lock: scripts/setup.sh installs the CPU build on machines without a GPU
# and the CUDA build on GPU machines, then the lock. torch is resolved here against its CPU
# wheel (torch==${TORCH_CPU_VERSION}+cpu, read from a local folder), so the lock carries torch's
# pure-Python dependencies (sympy, networkx, ...) but no nvidia-*, triton or cuda packages.
#
# uv (pinned below) runs from a throw-away venv under /tmp, never from the project's .venv, and
# ignores pip's and uv's configuration files, so the result depends only on PyPI and the torch
# wheel. The versions already in requirements/lock.txt are kept where they still satisfy
# pyproject.toml (uv treats the output file as preferences), so re-running gives the same file;
# to move versions pass uv's options through, e.g.
#   bash scripts/lock.sh --upgrade-package gradio     (or --upgrade for everything)
#
# Environment: TORCH_CPU_VERSION (default 2.13.0, same as setup.sh), TORCH_WHEELS (folder holding
# torch-${TORCH_CPU_VERSION}+cpu-cp311-*.whl, default /opt/wheels), LOCK_INDEX_URL (default PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}
TORCH_WHEELS=${TORCH_WHEELS:-/opt/wheels}
INDEX_ARGS=()
[ -z "${LOCK_INDEX_URL:-}" ] || INDEX_ARGS=(--index-url "$LOCK_INDEX_URL")  # default: uv's own default index
TOOL_VENV=${LOCK_TOOL_VENV:-/tmp/srreal-lock-tool}
OUT=requirements/lock.txt

# The CPU torch wheel, alone in a temporary folder (nothing else from TORCH_WHEELS can leak in).
shopt -s nullglob
wheels=("$TORCH_WHEELS"/torch-"${TORCH_CPU_VERSION}"+cpu-cp311-cp311-*linux*_x86_64.whl)
shopt -u nullglob
if [ ${#wheels[@]} -eq 0 ]; then
  echo "lock: no torch-${TORCH_CPU_VERSION}+cpu wheel for cp311 Linux x86_64 in ${TORCH_WHEELS}." >&2
  echo "      Fetch it, then re-run with TORCH_WHEELS=DIR:" >&2
  echo "      pip download --no-deps -d DIR 'torch==${TORCH_CPU_VERSION}+cpu' --python-version 3.11 \\" >&2
  echo "        --platform manylinux_2_28_x86_64 --only-binary=:all: --index-url <PyTorch's CPU wheel index>" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/wheels"
cp "${wheels[0]}" "$tmp/wheels/"
echo "torch==${TORCH_CPU_VERSION}+cpu" >"$tmp/torch-cpu.txt"

# uv, pinned, in its own venv (not the project's).
if [ "$("$TOOL_VENV/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  python3 -m venv "$TOOL_VENV"
  "$TOOL_VENV/bin/python" -m pip install -q "uv==${UV_VERSION}"
fi

mkdir -p requirements
"$TOOL_VENV/bin/uv" --no-config pip compile pyproject.toml --extra dev \
  --python-version 3.11 --python-platform x86_64-manylinux_2_35 \
  "${INDEX_ARGS[@]}" --find-links "$tmp/wheels" \
  --constraints "$tmp/torch-cpu.txt" --no-emit-package torch \
  --custom-compile-command "bash scripts/lock.sh" \
  --quiet --output-file "$OUT" "$@"

# Belt and braces: nothing GPU-specific may be in the lock.
if grep -Eiq '^(torch|nvidia-|triton|cuda)' "$OUT"; then
  echo "lock: ${OUT} names torch or a CUDA package:" >&2
  grep -Ei '^(torch|nvidia-|triton|cuda)' "$OUT" >&2
  exit 1
fi
echo "lock: wrote ${OUT} ($(grep -c '==' "$OUT") packages)"
