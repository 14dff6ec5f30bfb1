#!/usr/bin/env bash
# Installs the servers the signal tests run against: Debian's `prometheus` and `redis-server`.
#
# Idempotent: a binary already on PATH (or in /usr/bin, /usr/sbin) is left alone, and
# apt-get runs only for what is missing. The tests start their own servers on free ports of
# 127.0.0.1 with temporary data directories, so the packages' system services are not
# wanted: while installing, a temporary policy-rc.d tells the packages not to start them
# (only when no policy-rc.d exists already; it is removed again on every exit path).
#
# Usage: scripts/install-servers.sh          (as root, or with sudo available)
# Exit status: 0 when both binaries are there afterwards; 1 with a message saying what to do.
set -euo pipefail

log() { printf '[install-servers] %s\n' "$*"; }
die() { printf 'install-servers.sh: error: %s\n' "$*" >&2; exit 1; }

find_bin() {  # find_bin NAME: print the binary's path, or nothing
  command -v "$1" 2>/dev/null && return 0
  local d
  for d in /usr/bin /usr/sbin /usr/local/bin; do
    [[ -x "$d/$1" ]] && { echo "$d/$1"; return 0; }
  done
  return 0
}

declare -A package_of=([prometheus]=prometheus [redis-server]=redis-server)
missing=()
for b in prometheus redis-server; do
  path="$(find_bin "$b")"
  if [[ -n $path ]]; then
    log "present: $b ($path)"
  else
    missing+=("${package_of[$b]}")
  fi
done
[[ ${#missing[@]} == 0 ]] && exit 0

command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available.
Install Prometheus (>= 2.x) and Redis (>= 7 for stream lag) with your package manager so that
'prometheus' and 'redis-server' are on PATH, then run the tests again."

sudo=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: run this script as root
(or install sudo) so that apt-get can install them."
  sudo=(sudo)
fi

policy=/usr/sbin/policy-rc.d
made_policy=0
cleanup() { if [[ $made_policy == 1 ]]; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT
if [[ ! -e $policy ]]; then
  # Exit 101 = "action not allowed": the packages install without starting their services.
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  made_policy=1
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq || die "apt-get update failed (see above); cannot install ${missing[*]}"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" \
  || die "apt-get install ${missing[*]} failed (see above)"

for b in prometheus redis-server; do
  [[ -n "$(find_bin "$b")" ]] || die "$b is still not on PATH after installing its package"
done
log "done: $(find_bin prometheus), $(find_bin redis-server)"
