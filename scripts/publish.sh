#!/usr/bin/env bash
# Publishes a deployable PIT server: a framework-dependent Release build of src/Pit.Server (run it with the ASP.NET
# Core 10 runtime: `dotnet Pit.Server.dll`), with appsettings.json but no development settings, no launch profiles
# and no web.config. Then checks that, and prints the version it published.
#   scripts/publish.sh [output folder, default artifacts/pit-server] [more `dotnet publish` arguments, e.g. --no-build]
# Install it as docs/OPERATIONS.md ("Deploying") and deploy/pit-server.service describe.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-artifacts/pit-server}"
shift || true

# Start from an empty folder, so nothing from an earlier build lingers; never empty a folder that is not a publish.
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ]; then
  if [ -f "$out/Pit.Server.dll" ]; then
    rm -rf "$out"
  else
    echo "publish: $out is not empty and holds no earlier publish; choose another folder" >&2
    exit 2
  fi
fi

dotnet publish src/Pit.Server/Pit.Server.csproj -c Release -o "$out" --nologo -v quiet "$@"

development=$(find "$out" \( -name 'appsettings.Development.json' -o -name 'launchSettings.json' -o -name 'web.config' \
  -o -name '*.pem' -o -name '*.jwk.json' -o -name '*.db' \) -print)
if [ -n "$development" ]; then
  echo "publish: development files in $out:" >&2
  echo "$development" >&2
  exit 1
fi

echo "Published Pit.Server $(dotnet "$out/Pit.Server.dll" --version) to $out"
