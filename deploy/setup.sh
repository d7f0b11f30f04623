#!/usr/bin/env bash
# Install mlops_assets into ./.venv on a fresh Debian 12/13 machine (idempotent).
# pip, not uv: pip takes torch from this machine's disk when the hpc extra is asked for.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${MLOPS_EXTRAS:-dev,sandbox}"
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
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${extras}]"
echo "setup: installed mlops-assets with extras [${extras}] into .venv"
