#!/usr/bin/env bash
# Run every chapter notebook (notebooks/[0-9]*.ipynb) under nbval on the python3 kernel and
# save the executed copies to _build/executed/ (tests/nbval_capture.py) for the book build.
#
# nbval's own cell timeout does not always stop a kernel that hangs, so the whole run sits
# under an outer `timeout` as well. Both limits are in seconds and can be overridden:
#   CELL_TIMEOUT      one cell (default 1200)
#   NOTEBOOK_TIMEOUT  all notebooks together (default 3000)
set -uo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-.venv/bin/python}
cell_timeout=${CELL_TIMEOUT:-1200}
notebook_timeout=${NOTEBOOK_TIMEOUT:-3000}

shopt -s nullglob
notebooks=(notebooks/[0-9]*.ipynb)
if (( ${#notebooks[@]} == 0 )); then
    echo "run_notebook_tests: no notebook matches notebooks/[0-9]*.ipynb, so there is nothing to test" >&2
    exit 1
fi

timeout --kill-after=60 "$notebook_timeout" \
    "$python" -m pytest -p tests.nbval_capture --nbval-capture-dir _build/executed \
    --nbval-lax --nbval-kernel-name python3 --nbval-cell-timeout "$cell_timeout" \
    --nbval-sanitize-with tools/nbval_sanitize.cfg "${notebooks[@]}"
status=$?

case $status in
    0) ;;
    5) echo "run_notebook_tests: pytest collected no notebook cell from ${notebooks[*]}" >&2
       status=1 ;;
    124|137) echo "run_notebook_tests: timed out: the notebooks did not finish within NOTEBOOK_TIMEOUT=${notebook_timeout} s" >&2 ;;
esac
exit $status
