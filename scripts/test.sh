#!/usr/bin/env bash
# Runs every test project. Installs what the tests need on a fresh machine (PostgreSQL server binaries from
# Debian's packages, chromium for the /docs browser test, systemd-analyze for the unit files and promtool for the alert
# rules, when missing), then prints the total as its last line: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "Installing PostgreSQL server binaries (Debian packages)..."
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null \
    || { echo "could not install PostgreSQL"; exit 1; }
fi

# The API reference test opens /docs in a real headless browser: Debian's chromium.
if [ ! -x /usr/bin/chromium ]; then
  echo "Installing chromium (Debian package) for the /docs browser test..."
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
    || { echo "could not install chromium"; exit 1; }
fi

# The monitoring tests run promtool on deploy/prometheus: Debian's prometheus package ships it.
if ! command -v promtool >/dev/null 2>&1; then
  echo "Installing promtool (Debian package prometheus) for the alert-rule tests..."
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || { echo "could not install promtool"; exit 1; }
fi

# The deployment test checks deploy/*.service with systemd-analyze verify: Debian's systemd package.
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "Installing systemd (Debian package) for systemd-analyze..."
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null \
    || { echo "could not install systemd"; exit 1; }
fi

log=$(mktemp)
dotnet test Pit.slnx -c Release 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

passed=0; failed=0; skipped=0
while IFS= read -r line; do
  f=$(sed -E 's/.*Failed: *([0-9]+).*/\1/' <<<"$line")
  p=$(sed -E 's/.*Passed: *([0-9]+).*/\1/' <<<"$line")
  s=$(sed -E 's/.*Skipped: *([0-9]+).*/\1/' <<<"$line")
  failed=$((failed + f)); passed=$((passed + p)); skipped=$((skipped + s))
done < <(grep -E '(Passed|Failed)! +- +Failed: +[0-9]+, +Passed: +[0-9]+, +Skipped: +[0-9]+' "$log")
rm -f "$log"

if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$passed" -gt 0 ]
