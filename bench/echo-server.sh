#!/usr/bin/env bash
# Tulip's echo server for ../shared/bench's load generator: binds 127.0.0.1, runs until killed.
#   ./bench/echo-server.sh --mode protocol|buffered --port P [--reactor default|select]
set -euo pipefail
cd "$(dirname "$0")/.."
dll=bench/Tulip.Bench/bin/Release/net10.0/Tulip.Bench.dll
if [ ! -f "$dll" ]; then
  . scripts/env.sh
  tulip_restore >/dev/null
  dotnet build bench/Tulip.Bench -c Release --nologo -v q >/dev/null
fi
exec dotnet "$dll" --echo-server "$@"
