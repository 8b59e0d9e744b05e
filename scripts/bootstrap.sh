#!/usr/bin/env bash
# Builds the project's environment: a pinned uv in .tools/, then .venv/ synced from uv.lock.
#
# Usage: scripts/bootstrap.sh [EXTRA...]     (default extra: dev; `make demo` asks for demo
#                                            only, `make bench` adds bench)
#
# Needs only python3 >= 3.11 on PATH. Idempotent: a stamp in .venv/ records the hash of
# uv.lock, pyproject.toml, this script, the interpreter and the extras synced, so a second run
# returns at once.
#
# The interpreter .venv is built on: $SAGA_PYTHON when set; otherwise the operating system's own
# /usr/bin/python3 when it is 3.11 or newer and complete (ssl, sqlite3, ctypes), else python3 on
# PATH. The system's comes first because distributions build CPython with profile-guided and
# link-time optimisation into a statically linked executable, and pyenv or a plain source build
# does neither by default: on this project's CI machine (Debian 12, pyenv's 3.11.7 first on
# PATH) the test suite needed 22 % less CPU on Debian's 3.11.2 (DEVELOPERS.md). Set
# SAGA_PYTHON=python3 to keep the one on PATH. (Not $PYTHON: node-gyp and other build tools
# read that one, often set to some other Python.)
# Extras accumulate: a sync keeps the extras synced before, so `make demo` after `make test`
# leaves the dev tools in place and `make test` after `make demo` adds them.
set -euo pipefail

UV_VERSION="0.13.9"   # keep in step with [tool.uv] required-version in pyproject.toml

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
TOOLS="$ROOT/.tools"
UV="$TOOLS/bin/uv"

export UV_PYTHON_DOWNLOADS=never      # use the system python3; never fetch an interpreter
export UV_PROJECT_ENVIRONMENT="${UV_PROJECT_ENVIRONMENT:-$ROOT/.venv}"
VENV="$UV_PROJECT_ENVIRONMENT"
STAMP="$VENV/.bootstrap.stamp"

extras=("$@")
[ ${#extras[@]} -eq 0 ] && extras=(dev)

usable() {  # usable INTERPRETER: 3.11 or newer, with the modules a distribution may split off
    "$1" - 2>/dev/null <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(1)
import ctypes, sqlite3, ssl  # noqa: E401,F401
PY
}
if [ -n "${SAGA_PYTHON:-}" ]; then
    interpreter="$SAGA_PYTHON"
    usable "$interpreter" || {
        echo "bootstrap: SAGA_PYTHON=$interpreter is not a complete Python >= 3.11" >&2
        exit 1
    }
elif [ -x /usr/bin/python3 ] && usable /usr/bin/python3; then
    interpreter=/usr/bin/python3
else
    interpreter=python3
    usable python3 || { echo "bootstrap: python3 >= 3.11 is required" >&2; exit 1; }
fi
interpreter="$(command -v "$interpreter")"

# 1. The pinned uv, in its own throwaway venv.
if [ ! -x "$UV" ] || [ "$("$UV" --version 2>/dev/null | awk '{print $2}')" != "$UV_VERSION" ]; then
    echo "bootstrap: installing uv $UV_VERSION into .tools/" >&2
    rm -rf "$TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check \
        "uv==$UV_VERSION" 2> >(grep -v "is neither a file nor a directory" >&2)
fi

[ -f uv.lock ] || { echo "bootstrap: uv.lock is missing: run 'make lock' and commit it" >&2; exit 1; }

# 2. Skip the sync when nothing it depends on changed and the extras are already there.
hash="$( (cat uv.lock pyproject.toml "${BASH_SOURCE[0]}"; echo "$interpreter") | sha256sum | cut -d' ' -f1)"
stamp_hash=""
stamp_extras=""
if [ -f "$STAMP" ] && [ -x "$VENV/bin/python" ]; then
    read -r stamp_hash stamp_extras < "$STAMP" || true
fi
missing=0
for e in "${extras[@]}"; do
    case ",${stamp_extras}," in *",$e,"*) ;; *) missing=1 ;; esac
done
[ "$stamp_hash" = "$hash" ] && [ $missing -eq 0 ] && exit 0

# The extras synced before stay (uv sync removes what it is not asked for).
IFS=, read -r -a kept <<< "$stamp_extras"
for e in "${kept[@]}"; do
    case " ${extras[*]} " in *" $e "*) ;; *) [ -n "$e" ] && extras+=("$e") ;; esac
done

# 3. Sync .venv exactly to the lock (--locked: fail if uv.lock is stale against pyproject.toml).
extra_args=()
for e in "${extras[@]}"; do extra_args+=(--extra "$e"); done
echo "bootstrap: syncing $VENV on $interpreter (extras: ${extras[*]})" >&2
"$UV" sync --locked --python "$interpreter" "${extra_args[@]}"

rm -f "$STAMP"
printf '%s %s\n' "$hash" "$(IFS=,; echo "${extras[*]}")" > "$STAMP"
