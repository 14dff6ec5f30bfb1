#!/usr/bin/env bash
# Installs the browser the report test renders the `--report` page in: Debian's `chromium`.
#
# tests/sim/test_report_browser.py drives it with playwright (a dev dependency), which
# cannot download its own browsers on a machine without that network access, so it is
# launched from /usr/bin/chromium. Idempotent: a chromium already there is left alone and
# apt-get runs only when it is missing.
#
# Usage: scripts/install-chromium.sh          (as root, or with sudo available)
# Exit status: 0 when /usr/bin/chromium (or chromium on PATH) is there afterwards; 1 with a
# message saying what to do.
set -euo pipefail

log() { printf '[install-chromium] %s\n' "$*"; }
die() { printf 'install-chromium.sh: error: %s\n' "$*" >&2; exit 1; }

find_chromium() {  # print the browser's path, or nothing
  if [[ -x /usr/bin/chromium ]]; then echo /usr/bin/chromium; return 0; fi
  command -v chromium 2>/dev/null || true
}

path="$(find_chromium)"
if [[ -n $path ]]; then
  log "present: chromium ($path)"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "chromium is missing and apt-get is not available.
Install Chromium with your package manager so that /usr/bin/chromium exists (or 'chromium'
is on PATH), then run the tests again."

sudo=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "chromium is missing: run this script as root
(or install sudo) so that apt-get can install it."
  sudo=(sudo)
fi

log "installing: chromium"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq || die "apt-get update failed (see above); cannot install chromium"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium \
  || die "apt-get install chromium failed (see above)"

path="$(find_chromium)"
[[ -n $path ]] || die "chromium is still not there after installing its package"
log "done: $path"
