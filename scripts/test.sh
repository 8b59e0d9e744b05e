#!/usr/bin/env bash
# The one test command (`make test`, and `.ci/run` through it): ruff, ruff format, mypy --strict,
# import-linter, then pytest. Arguments are passed to pytest: scripts/test.sh -k replay -x
# Without arguments, the linters and the schemathesis fuzz run beside the rest (see below).
#
# PostgreSQL: TEST_DATABASE_URL if set, else postgresql://root@127.0.0.1:5432/root. If it cannot
# be reached, the postgres half is skipped (ORCH_TEST_SKIP_POSTGRES=1) -- except under CI=true,
# where that is an error. Every check runs even after one fails; the exit code is non-zero if any
# failed. pytest collecting no test at all (exit 5) counts as a failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/bootstrap.sh

export PATH="$PWD/.venv/bin:$PATH"
# Bytecode is cached outside the tree (.venv/pycache/, gone with `make clean`), not switched off:
# the suite starts a few hundred Python processes (workers, the CLI, servers), and each compiled
# every module it imports from source when nothing was written (about 2.3 s of CPU to import
# orchestrator.cli, 0.9 s from the cache). Stale entries are safe: each is checked against its
# source's mtime and size, as in __pycache__/.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="$PWD/.venv/pycache"

failed=()
run() {  # run LABEL COMMAND...: keep going on failure, remember the label
    local label="$1"
    shift
    echo "==> $*"
    "$@" || failed+=("$label")
}

# Scratch files (pytest's tmp_path: SQLite databases, logs, Chromium's profiles) go to memory
# when /dev/shm is there: on a disk, creating and deleting thousands of small files costs kernel
# time (ext4 without a journal scans past every recently deleted inode for each new file). The
# tests kill processes, never the machine, so nothing they check needs a disk. The folder is
# removed after a passing run and kept (its path printed) after a failing one. A TMPDIR set
# by the caller is used as it is.
scratch=""
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    scratch="$(mktemp -d /dev/shm/saga-test.XXXXXX)"
    chmod 1777 "$scratch"  # as /tmp: PgBouncer, run as another user, reads its folder there
    export TMPDIR="$scratch"
fi

# Decide whether PostgreSQL is there.
url="${TEST_DATABASE_URL:-postgresql://root@127.0.0.1:5432/root}"
shown="$(printf '%s' "$url" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#')"
if python - "$url" <<'PY' 2>/dev/null
import sys

import psycopg

psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
then
    export TEST_DATABASE_URL="$url"
elif [ "${CI:-}" = "true" ]; then
    echo "PostgreSQL not reachable at $shown: CI=true requires it (start it, or set TEST_DATABASE_URL)" >&2
    exit 1
else
    echo "PostgreSQL not reachable at $shown: running the SQLite half only"
    export ORCH_TEST_SKIP_POSTGRES=1
fi

# The full suite fuzzes the HTTP API with schemathesis at 250 cases per operation
# (tests/http/test_schemathesis.py; `make fuzz` runs 2,000). That is CPU-bound hypothesis work:
# it runs as a pytest of its own in two xdist processes, started now, beside the linters and
# the rest of the suite. Two, so that whichever ends last, the fuzz or the suite, has both cores:
# in one process the fuzz was sometimes the last thing running, on one core (the CI run of
# b6bce57: 8:05, its fuzz ending 48 s after pytest); inside the suite's xdist run it stayed on
# one worker to the end (8:56). Its output is shown when it ends. With arguments, pytest runs
# only what they select, as given.
fuzz_pid=""
fuzz_log=""
full=$(( $# == 0 ))
if [ "$full" -eq 1 ] && [ -z "${ORCH_TEST_SKIP_POSTGRES:-}" ]; then
    export SCHEMATHESIS_MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-250}"
    fuzz_log="$(mktemp -t schemathesis.XXXXXX.log)"
    echo "==> pytest tests/http/test_schemathesis.py (background, 2 processes, $SCHEMATHESIS_MAX_EXAMPLES cases per operation)"
    # Its own process group (setsid), so an interrupted run stops it and its servers with it.
    setsid python -m pytest -p no:cacheprovider -q -n 2 --dist worksteal \
        tests/http/test_schemathesis.py >"$fuzz_log" 2>&1 &
    fuzz_pid=$!
    set -- --ignore=tests/http/test_schemathesis.py
fi

# The full suite runs in PYTEST_WORKERS processes (pytest-xdist; default 3 on this 2-core
# target: most tests wait on subprocesses, sockets and PostgreSQL, not the CPU). Each worker has
# its own template database and free ports. With arguments it runs in one process, as given.
if [ "$full" -eq 1 ] && [ "${PYTEST_WORKERS:-3}" != "0" ]; then
    set -- "$@" -n "${PYTEST_WORKERS:-3}" --dist worksteal
fi

lint() {
    run ruff-check ruff check .
    run ruff-format ruff format --check .
    run mypy mypy
    run import-linter lint-imports
    if [ ${#failed[@]} -gt 0 ]; then
        echo "failed: ${failed[*]}"
        return 1
    fi
}

# The linters run beside pytest in a full run (their output is shown when they end), before
# it otherwise.
lint_pid=""
lint_log=""
if [ "$full" -eq 1 ]; then
    lint_log="$(mktemp -t lint.XXXXXX.log)"
    echo "==> linters (background): ruff check, ruff format --check, mypy, lint-imports"
    lint >"$lint_log" 2>&1 &
    lint_pid=$!
else
    lint || true
fi
trap 'kill -- -"$fuzz_pid" 2>/dev/null || true; kill "$lint_pid" 2>/dev/null || true
      rm -f "$fuzz_log" "$lint_log"' EXIT
trap 'exit 130' INT TERM

echo "==> pytest $*"
set +e
python -m pytest -p no:cacheprovider "$@"
status=$?
set -e

if [ -n "$lint_pid" ]; then
    set +e
    wait "$lint_pid"
    lint_status=$?
    set -e
    echo "==> linters (exit $lint_status):"
    cat "$lint_log"
    if [ $lint_status -ne 0 ]; then failed+=(lint); fi
fi

if [ -n "$fuzz_pid" ]; then
    set +e
    wait "$fuzz_pid"
    fuzz_status=$?
    set -e
    echo "==> schemathesis (exit $fuzz_status):"
    if [ $fuzz_status -eq 0 ]; then tail -n 3 "$fuzz_log"; else cat "$fuzz_log"; fi
    if [ $fuzz_status -ne 0 ]; then failed+=(schemathesis); fi
fi

if [ $status -eq 5 ]; then
    echo "pytest collected no tests (exit 5): treating that as a failure" >&2
    status=1
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}" >&2
    [ $status -eq 0 ] && status=1
fi
if [ -n "$scratch" ]; then
    if [ $status -eq 0 ]; then rm -rf "$scratch"; else echo "scratch files kept in $scratch" >&2; fi
fi
exit $status
