#!/usr/bin/env bash
# Install mlops_assets into ./.venv on a fresh Debian 12/13 machine (idempotent), exactly as
# uv.lock pins it: every package by version and hash (pip --require-hashes --no-deps), then the
# project itself with --no-deps --no-build-isolation, so nothing is resolved against what the
# index serves today. pip, not uv, installs: pip reaches the index as this machine's pip.conf
# says (mirrors, find-links: torch from local disk when the hpc extra is asked for); uv (pinned
# in the lock too) only turns the lock into hashed requirements, offline.
# MLOPS_EXTRAS picks the extras (default dev,sandbox; add hpc for torch: it is locked too, and
# pip takes it from local disk where pip.conf points there). MLOPS_VENV: the venv (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${MLOPS_EXTRAS:-dev,sandbox}"
venv="${MLOPS_VENV:-.venv}"
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python >= 3.11 is required (found $(python3 -V))" >&2; exit 2
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
case ",$extras," in
  *,dev,*)  # the browser tests use Debian's Chromium, never a downloaded browser build
    if ! command -v chromium >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi ;;
esac
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
pip=("$py" -m pip install -q --require-virtualenv --no-deps)
# 1. pip and uv, by hash, read from uv.lock with the standard library
"$py" deploy/lock.py pins pip uv >"$venv/mlops-bootstrap.txt"
"${pip[@]}" --require-hashes -r "$venv/mlops-bootstrap.txt"
# 2. everything the lock gives for these extras + the [install] group (setuptools, wheel)
"$py" deploy/lock.py requirements --extras "$extras" >"$venv/mlops-requirements.txt"
"${pip[@]}" --require-hashes -r "$venv/mlops-requirements.txt"
# 3. the project, editable, built by the locked setuptools: no resolution, no download
# (setuptools' notice that an editable install is one is not news here)
PYTHONWARNINGS="ignore:Editable installation:UserWarning" "${pip[@]}" --no-build-isolation -e .
"$py" -m pip check >/dev/null
echo "setup: installed mlops-assets with extras [${extras}] into $venv from uv.lock ($(grep -c '^[A-Za-z0-9]' "$venv/mlops-requirements.txt") locked packages)"
