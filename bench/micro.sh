#!/usr/bin/env bash
# Quick micro benchmarks: Tulip's, in the output shape of ../shared/bench/micro/py_micro.py.
#   ./bench/micro.sh [NAME...] [--scale F] [--runs N]   Tulip only
#   ./bench/micro.sh --peers [NAME...]                   Tulip, then asyncio (and uvloop if installed), same run
# Rows with a twin script of their own get their peers from it:
#   executor_thread executor_process run_coroutine_threadsafe   bench/executors.py
#   getaddrinfo_numeric getaddrinfo_localhost                   bench/getaddrinfo.py
#   subprocess_spawn_communicate subprocess_cat_throughput      bench/subprocess_bench.py
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
[ "$peers" = 1 ] || exit 0

py=/usr/bin/python3; [ -x "$py" ] || py=python3
has_uvloop=0; $py -c 'import uvloop' 2>/dev/null && has_uvloop=1
[ "$has_uvloop" = 1 ] || echo "## uvloop: not installed (apt-get install -y python3-uvloop)"
pick() { printf '%s\n' "${args[@]}" | grep -E "$1" | paste -sd"$2" - || true; }

execs=$(pick '^(executor_thread|executor_process|run_coroutine_threadsafe)$' ' ')
if [ -n "$execs" ]; then
  echo "## asyncio / uvloop executors ($($py --version 2>&1))"
  # shellcheck disable=SC2086
  $py bench/executors.py --loop asyncio $execs
  # shellcheck disable=SC2086
  if [ "$has_uvloop" = 1 ]; then $py bench/executors.py --loop uvloop $execs; fi
fi

gai=$(pick '^getaddrinfo_' ',')
if [ -n "$gai" ]; then
  echo "## asyncio / uvloop getaddrinfo ($($py --version 2>&1))"
  $py bench/getaddrinfo.py --loop asyncio --only "$gai"
  if [ "$has_uvloop" = 1 ]; then $py bench/getaddrinfo.py --loop uvloop --only "$gai"; fi
fi

sub=$(pick '^subprocess_' ',')
if [ -n "$sub" ]; then
  echo "## asyncio subprocess ($($py --version 2>&1))"
  $py bench/subprocess_bench.py --loop asyncio --only "$sub"
  if [ "$has_uvloop" = 1 ]; then
    echo "## uvloop subprocess"
    $py bench/subprocess_bench.py --loop uvloop --only "$sub"
  fi
fi

# The core rows: ../shared/bench/micro/py_micro.py (all four defaults when no row was named at all).
only=$(pick '^(call_soon|call_later|tasks_batch|tasks_seq|queue_pingpong|queue_unbounded)$' ',')
[ -n "$only$execs$gai$sub" ] || only=call_soon,call_later,tasks_batch,tasks_seq
[ -n "$only" ] || exit 0
micro=../shared/bench/micro/py_micro.py
[ -f "$micro" ] || { echo "peer script $micro not found" >&2; exit 1; }
echo "## asyncio ($($py --version 2>&1))"
$py "$micro" --loop asyncio --only "$only"
if [ "$has_uvloop" = 1 ]; then
  echo "## uvloop"
  $py "$micro" --loop uvloop --only "$only"
fi
