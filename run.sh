#!/usr/bin/env bash
# Build and run the examples tour.
#   ./run.sh          the whole tour
#   ./run.sh list     list the examples
#   ./run.sh NAME...  run the named examples
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=scripts/env.sh
source scripts/env.sh

tulip_restore
tulip_build

exec dotnet shell-cs/Tulip.Examples/bin/Release/net10.0/Tulip.Examples.dll "$@"
