#!/usr/bin/env bash
# `make test`: the unit tests, every chapter notebook under nbval, then the book built
# from the notebooks that nbval executed. Every step runs even if an earlier one failed.
# The failed steps are listed at the end, and the exit status is 1 if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-.venv/bin/python}
failed=()

"$python" -m pytest tests
status=$?
if (( status == 5 )); then
    echo "run_tests: pytest found no unit test under tests/" >&2
fi
(( status == 0 )) || failed+=("unit tests (pytest tests, exit status $status)")

tools/run_notebook_tests.sh || failed+=("notebooks (tools/run_notebook_tests.sh)")

"$python" tools/build_book.py --executed _build/executed || failed+=("book build (tools/build_book.py)")

if (( ${#failed[@]} > 0 )); then
    printf 'run_tests: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "run_tests: unit tests, notebooks and book build all passed"
