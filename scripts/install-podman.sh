#!/usr/bin/env bash
# Installs what building and running the controller image needs: Debian's `podman`,
# `buildah`, `runc` and `debootstrap` (scripts/build-image.sh; tests/image).
#
# Idempotent, like scripts/install-servers.sh: a binary already on PATH (or in /usr/bin,
# /usr/sbin) is left alone, and apt-get runs only for what is missing.
#
# Why runc: podman's default runtime (crun) refuses machines with hybrid cgroups (v1 + v2),
# which CI machines have; the build script and the tests pass `--runtime runc`.
#
# Usage: scripts/install-podman.sh          (as root, or with sudo available)
# Exit status: 0 when all four are there afterwards; 1 with a message saying what to do.
set -euo pipefail

log() { printf '[install-podman] %s\n' "$*"; }
die() { printf 'install-podman.sh: error: %s\n' "$*" >&2; exit 1; }

find_bin() {  # find_bin NAME: print the binary's path, or nothing
  command -v "$1" 2>/dev/null && return 0
  local d
  for d in /usr/bin /usr/sbin /usr/local/bin /usr/local/sbin; do
    [[ -x "$d/$1" ]] && { echo "$d/$1"; return 0; }
  done
  return 0
}

bins=(podman buildah runc debootstrap)
missing=()
for b in "${bins[@]}"; do
  path="$(find_bin "$b")"
  if [[ -n $path ]]; then
    log "present: $b ($path)"
  else
    missing+=("$b")  # each binary's Debian package has its name
  fi
done
[[ ${#missing[@]} == 0 ]] && exit 0

command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available.
Install podman (>= 4), buildah, runc and debootstrap with your package manager, then run
'make image' again."

sudo=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: run this script as root
(or install sudo) so that apt-get can install them."
  sudo=(sudo)
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq || die "apt-get update failed (see above); cannot install ${missing[*]}"
# --no-install-recommends would leave podman without its usual helpers (conmon comes as a
# dependency either way); recommends are what a plain `apt-get install podman` gets.
"${sudo[@]}" apt-get install -y -qq "${missing[@]}" \
  || die "apt-get install ${missing[*]} failed (see above)"

for b in "${bins[@]}"; do
  [[ -n "$(find_bin "$b")" ]] || die "$b is still not on PATH after installing its package"
done
log "done: $(podman --version), $(buildah --version | cut -d' ' -f1-3), $(runc --version | head -1)"
