#!/usr/bin/env bash
# Create .venv and install mom with everything the notebooks and tests need.
# Offline-friendly: torch/torchvision are pinned to the builds this project is tested with.
set -euo pipefail
cd "$(dirname "$0")"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # optional Debian packages, each skipped when present; setup never fails on them
  want=""
  # the full Fashion-MNIST IDX files (the bundled subset works without them)
  dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || want="$want dataset-fashion-mnist"
  # a headless browser for tests/test_browser.py (skipped without them)
  dpkg -s chromium >/dev/null 2>&1 || want="$want chromium"
  dpkg -s chromium-driver >/dev/null 2>&1 || want="$want chromium-driver"
  if [ -n "$want" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    for pkg in $want; do
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 || case $pkg in
        dataset-fashion-mnist) echo "note: $pkg not installed; the bundled subset will be used" ;;
        *) echo "note: $pkg not installed; tests/test_browser.py will be skipped" ;;
      esac
    done
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install -q -e ".[dev]"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
# JupyterLab opens the jupytext .py notebooks as notebooks (not as text): the default
# viewer for Python files, in the environment's own config (not the user's ~/.jupyter)
mkdir -p .venv/etc/jupyter/labconfig
cp jupyter/labconfig/default_setting_overrides.json .venv/etc/jupyter/labconfig/
