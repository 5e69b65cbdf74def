#!/usr/bin/env bash
# Quick micro benchmarks: Tulip's, in the output shape of ../shared/bench/micro/py_micro.py.
#   ./bench/micro.sh [NAME...] [--scale F] [--runs N]   Tulip only
#   ./bench/micro.sh --peers [NAME...]                   Tulip, then asyncio (and uvloop if installed), same run
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
peers=0
args=()
for a in "$@"; do
  if [ "$a" = "--peers" ]; then peers=1; else args+=("$a"); fi
done
tulip_restore >/dev/null
dotnet build bench/Tulip.Bench -c Release --nologo -v q | grep -E " error |rror\(s\)" || true
echo "## tulip"
dotnet bench/Tulip.Bench/bin/Release/net10.0/Tulip.Bench.dll "${args[@]}"
if [ "$peers" = 1 ]; then
  py=/usr/bin/python3; [ -x "$py" ] || py=python3
  micro=../shared/bench/micro/py_micro.py
  [ -f "$micro" ] || { echo "peer script $micro not found" >&2; exit 1; }
  only=$(printf '%s\n' "${args[@]}" | grep -E '^(call_soon|call_later|tasks_batch|tasks_seq|queue_pingpong|queue_unbounded)$' | paste -sd, - || true)
  sub_only=$(printf '%s\n' "${args[@]}" | grep -E '^subprocess_' | paste -sd, - || true)
  if [ -n "$only" ] || [ -z "$sub_only" ]; then
  [ -n "$only" ] || only=call_soon,call_later,tasks_batch,tasks_seq
  echo "## asyncio ($($py --version 2>&1))"
  $py "$micro" --loop asyncio --only "$only"
  if $py -c 'import uvloop' 2>/dev/null; then
    echo "## uvloop"
    $py "$micro" --loop uvloop --only "$only"
  else
    echo "## uvloop: not installed (apt-get install -y python3-uvloop)"
  fi
  fi
  # The subprocess rows' twin (issue 17): bench/subprocess_bench.py, same names and N.
  sub=$(printf '%s\n' "${args[@]}" | grep -E '^subprocess_' | paste -sd, - || true)
  if [ -n "$sub" ]; then
    echo "## asyncio subprocess ($($py --version 2>&1))"
    $py bench/subprocess_bench.py --loop asyncio --only "$sub"
    if $py -c 'import uvloop' 2>/dev/null; then
      echo "## uvloop subprocess"
      $py bench/subprocess_bench.py --loop uvloop --only "$sub"
    fi
  fi
fi
