# shellcheck shell=bash
# Sourced by run.sh, test.sh and .ci/run: environment, restore and build helpers.
# Callers are expected to `cd` to the repository root before sourcing.

export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# paket.dependencies and paket.lock name the feed as %NUGET_FEED%; Paket expands it from the
# environment. Unset, Paket takes the placeholder for a local folder and fails misleadingly.
if [ -z "${NUGET_FEED:-}" ]; then
    NUGET_FEED="$(dotnet nuget list source --format short 2>/dev/null | awk '/^E/ { print $2; exit }')"
    if [ -z "$NUGET_FEED" ]; then
        echo "error: NUGET_FEED is not set and no enabled NuGet source was found" >&2
        echo "       (\`dotnet nuget list source --format short\` shows no line starting with E)." >&2
        echo "       Enable a source with \`dotnet nuget add source\` or export NUGET_FEED=<feed URL>." >&2
        return 1 2>/dev/null || exit 1
    fi
fi
export NUGET_FEED

# `paket install`/`update` write the expanded feed URL into paket.lock's remote: lines. Put the
# placeholder back *before* `paket restore` (doing it after would change the lock's hash and
# re-trigger restore on the next build). The file is only rewritten when it differs.
tulip_unexpand_lock() {
    local lock=paket.lock tmp
    [ -f "$lock" ] || return 0
    tmp="$(mktemp "${lock}.XXXXXX")"
    sed -E 's|^([[:space:]]*remote:[[:space:]]+).*$|\1%NUGET_FEED%|' "$lock" > "$tmp"
    if cmp -s "$lock" "$tmp"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$lock"
        echo "paket.lock: remote: lines reset to %NUGET_FEED%"
    fi
}

tulip_restore() {
    dotnet tool restore >/dev/null || { echo "error: dotnet tool restore failed" >&2; return 1; }
    tulip_unexpand_lock || return 1
    dotnet paket restore || { echo "error: paket restore failed" >&2; return 1; }
}

tulip_build() {
    dotnet build Async.sln -c Release --nologo -v q || { echo "error: build failed" >&2; return 1; }
}
