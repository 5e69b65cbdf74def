#!/usr/bin/env bash
# Build and run every test suite; extra arguments are passed to each Expecto runner
# (e.g. ./test.sh --filter-test-case smoke, ./test.sh --sequenced, ./test.sh --debug).
# The last line is "N passed, M failed" (failed = failed + errored, summed over the suites).
set -euo pipefail
cd "$(dirname "$0")"

# Expecto console projects, run in this order. Add new suites here.
TEST_PROJECTS=(
    tests/Tulip.Tests
    property-tests/Tulip.PropertyTests
)
CONFIGURATION=Release
TFM=net10.0

# shellcheck source=scripts/env.sh
source scripts/env.sh

command -v python3 >/dev/null || { echo "error: test.sh needs python3 to read the test summaries" >&2; exit 1; }

tulip_restore
tulip_build

logdir="$(mktemp -d "${TMPDIR:-/tmp}/tulip-tests.XXXXXX")"
trap 'rm -rf "$logdir"' EXIT

total_passed=0
total_failed=0
total_ignored=0
any_nonzero=0
summaries=()

for project in "${TEST_PROJECTS[@]}"; do
    name="$(basename "$project")"
    dll="$project/bin/$CONFIGURATION/$TFM/$name.dll"
    log="$logdir/$name.log"
    echo
    echo "=== $project ==="
    if [ ! -f "$dll" ]; then
        echo "error: $dll was not built" >&2
        summaries+=("$project: not built")
        total_failed=$((total_failed + 1))
        any_nonzero=1
        continue
    fi

    set +e
    # Expecto writes escape sequences even with --colours 0: keep them in the log, not on screen.
    dotnet "$dll" --colours 0 --no-spinner --fail-on-focused-tests "$@" 2>&1 \
        | tee "$log" | sed -u -E 's/\x1b\[[0-9;?]*[A-Za-z]//g'
    code=${PIPESTATUS[0]}
    set -e
    echo   # Expecto's summary ends without a newline

    # Strip ANSI escapes, take the last "EXPECTO! N tests run in … – P passed, I ignored,
    # F failed, E errored." line (the separator is an en dash; not matched, to stay
    # locale-proof). Prints "P I F E", or nothing when there is no summary.
    counts="$(python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
# Expecto groups digits past 999 ("1,002 tests run", "1,002 passed"): a count is digits and separators.
n = r"(\d[\d,.'\u00a0\u202f]*)"
pat = re.compile(r"EXPECTO!\s+" + n + r" tests? run in .*?\s" + n + r" passed, " + n + r" ignored, " + n + r" failed, " + n + r" errored")
found = pat.findall(text)
if found:
    _, p, i, f, e = (re.sub(r"\D", "", x) for x in found[-1])
    print(p, i, f, e)
PY
)"

    if [ -n "$counts" ]; then
        read -r passed ignored failed errored <<<"$counts"
        bad=$((failed + errored))
        note=""
        if [ "$code" -ne 0 ] && [ "$bad" -eq 0 ]; then
            bad=1
            note=" (exit code $code with no failing test: counted as 1 failure)"
        fi
    else
        passed=0; ignored=0; failed=0; errored=0; bad=1
        note=" (no EXPECTO! summary, exit code $code: counted as 1 failure)"
    fi
    [ "$code" -eq 0 ] || any_nonzero=1

    total_passed=$((total_passed + passed))
    total_ignored=$((total_ignored + ignored))
    total_failed=$((total_failed + bad))
    summaries+=("$project: $passed passed, $ignored ignored, $failed failed, $errored errored, exit $code$note")
done

echo
echo "=== summary ==="
for s in "${summaries[@]}"; do echo "$s"; done
echo "ignored tests (not counted): $total_ignored"
echo "$total_passed passed, $total_failed failed"

if [ "$total_failed" -gt 0 ] || [ "$any_nonzero" -ne 0 ]; then
    exit 1
fi
