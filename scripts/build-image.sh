#!/usr/bin/env bash
# Builds the controller image from the Dockerfile with podman, cached by a hash of its inputs.
#
# The image: the project's wheel and its dependencies installed into /opt/venv on top of a
# Python base, run as uid 65532 on a read-only root filesystem; `autoscaler` is the entry
# point (`run ...` for the controller, `activator ...` for the activator). Three steps, each
# cached under ${XDG_CACHE_HOME:-$HOME/.cache}/elastic-autoscaler/image (like the Kubernetes
# binaries of scripts/k8s/build.sh), never in the repository:
#
#   1. The base. Default: a minimal Debian (debootstrap --variant=minbase of $DEBIAN_SUITE with
#      python3, python3-venv and ca-certificates, security updates applied, docs, man pages,
#      locales and apt lists removed) from the Debian mirror this machine's apt uses,
#      imported as localhost/elastic-autoscaler-base:<suite>-<key>. No container registry
#      is needed. With --base IMAGE (or BASE=IMAGE), that image instead, e.g. the
#      Dockerfile's default python:3.11-slim where a registry is reachable.
#   2. The wheels, made on this machine (the build itself runs with --network=none): the
#      project's wheel (`pip wheel --no-deps` of a copy of pyproject.toml, README.md,
#      autoscaler/ and policies/), and binary wheels of its dependencies (`pip download`
#      for the base's Python version, ABI and glibc), cached by the dependency list.
#   3. `podman build` of the Dockerfile with BASE set, on a context holding only those
#      wheels (deps/ and app/), tagged <repo>:<version> and <repo>:inputs-<hash>.
#
# The hash covers the Dockerfile, this script, pyproject.toml, README.md, autoscaler/,
# policies/, the base image's id and the dependency wheels' key: when an image tagged
# inputs-<hash> exists, nothing is done (the cached build). Its size is reported either way.
#
# Usage: scripts/build-image.sh [--base IMAGE] [--print-ref] [--force] [--refresh-base]
#   --base IMAGE    build FROM this image instead of the debootstrapped Debian base
#   --print-ref     print the image reference for the current inputs and exit (builds
#                   nothing; exit 3 when the base image is not there yet)
#   --force         build even if the image for these inputs exists
#   --refresh-base  debootstrap the base again (it is cached until its recipe changes,
#                   so this is how it gets newer Debian security updates)
# Environment: IMAGE_REPO (default ghcr.io/elastic-autoscaler/autoscaler), BASE,
#   DEBIAN_SUITE (default bookworm), DEBIAN_MIRROR (default: apt's), PYTHON (the Python
#   that runs pip here; default .venv/bin/python, else python3).
# Needs podman, runc and (for the default base) debootstrap as root: scripts/install-podman.sh.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/elastic-autoscaler/image"
image_repo="${IMAGE_REPO:-ghcr.io/elastic-autoscaler/autoscaler}"
base="${BASE:-}"
suite="${DEBIAN_SUITE:-bookworm}"
print_ref=0 force=0 refresh_base=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --base) base="${2:?--base needs an image}"; shift ;;
    --base=*) base="${1#--base=}" ;;
    --print-ref) print_ref=1 ;;
    --force) force=1 ;;
    --refresh-base) refresh_base=1 ;;
    -h|--help) sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

t0=$SECONDS
log() { [[ $print_ref == 1 ]] || printf '[image %4ds] %s\n' "$((SECONDS - t0))" "$*" >&2; }
die() { printf 'build-image.sh: error: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum | cut -c1-"${1:-64}"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

command -v podman >/dev/null 2>&1 || die "podman is not installed: run scripts/install-podman.sh
(as root; it installs Debian's podman, buildah, runc and debootstrap), then 'make image'."
# crun (podman's default runtime) refuses hybrid cgroups (v1 + v2); runc runs there. Raising
# rlimits is not permitted on such machines either, so they are lowered for every container.
engine_run=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
runtime=()
if command -v runc >/dev/null 2>&1; then runtime=(--runtime "$(command -v runc)"); fi
podman_() { podman "${runtime[@]}" "$@"; }

version="$(sed -nE 's/^version = "([^"]+)"/\1/p' "$repo/pyproject.toml" | head -1)"
[[ -n $version ]] || die "no version = \"...\" in pyproject.toml"

mkdir -p "$cache"
if [[ $print_ref == 0 ]]; then
  exec 9>"$cache/.lock"
  if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
    log "another image build is running; waiting for it"; flock 9
  fi
fi

# --- 1. the base --------------------------------------------------------------------------------
base_packages="python3,python3-venv,ca-certificates"
base_recipe=1  # bump when the recipe below changes what the base holds

apt_uri() {  # apt_uri SUFFIX: the first URI of this machine's apt sources ending in SUFFIX
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    grep -hoE '(https?|file)://[^ ]+' "$f" | sed 's#/$##' | grep -E "$1\$" | head -1 && return 0
  done
  return 0
}

build_debian_base() {  # build_debian_base REF DIR: debootstrap, clean, import as REF
  local ref="$1" dir="$2" t=$SECONDS
  local mirror="${DEBIAN_MIRROR:-$(apt_uri '/debian')}" security
  mirror="${mirror:-http://deb.debian.org/debian}"
  security="$(apt_uri '/debian-security')"; security="${security:-http://deb.debian.org/debian-security}"
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed: run
scripts/install-podman.sh (or pass --base IMAGE, e.g. python:3.11-slim where a registry is reachable)."
  [[ $(id -u) == 0 ]] || die "debootstrap needs root: run 'make image' as root, or pass --base IMAGE."
  if [[ $refresh_base == 1 || ! -f $dir/.complete ]]; then
    local root="$dir/rootfs"
    rm -rf "$dir"; mkdir -p "$dir"
    log "base: debootstrap $suite ($base_packages) from $mirror (minutes the first time)"
    debootstrap --variant=minbase --include="$base_packages" --components=main \
      "$suite" "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $dir/debootstrap.log: $(tail -3 "$dir/debootstrap.log")"
    log "base: applying $suite-updates and $suite-security"
    cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF
    {
      chroot "$root" apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -y -qq -o Dpkg::Use-Pty=0 upgrade \
        && chroot "$root" apt-get clean
    } >>"$dir/debootstrap.log" 2>&1 || die "apt-get upgrade in the base failed; see $dir/debootstrap.log"
    # What a container never reads: apt's lists and caches, docs (the copyright files stay),
    # man and info pages, translations, logs.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/man/* \
      "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/* "$root"/tmp/* \
      "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    tar --numeric-owner -C "$root" -cf "$dir/rootfs.tar" .
    rm -rf "$root"
    {
      echo "suite=$suite"; echo "packages=$base_packages"; echo "mirror=$mirror"
      echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "seconds=$((SECONDS - t))"
    } >"$dir/.complete"
    log "base: rootfs ready ($(mb "$(stat -c %s "$dir/rootfs.tar")")) in $((SECONDS - t))s"
  fi
  podman image rm -f "$ref" >/dev/null 2>&1 || true
  podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    --change "LABEL org.opencontainers.image.title=elastic-autoscaler-base" \
    --change "LABEL org.opencontainers.image.description=debootstrap $suite minbase + $base_packages" \
    "$dir/rootfs.tar" "$ref" >/dev/null || die "podman import of $dir/rootfs.tar failed"
  log "base: imported $ref"
}

base_built=0
if [[ -z $base ]]; then
  base_key="$(printf '%s\n' "$suite" "$base_packages" "$base_recipe" "$(uname -m)" | sha 12)"
  base="localhost/elastic-autoscaler-base:$suite-$base_key"
  base_dir="$cache/base-$suite-$base_key"
  if [[ $print_ref == 0 ]] && { [[ $refresh_base == 1 ]] || ! podman image exists "$base"; }; then
    build_debian_base "$base" "$base_dir"; base_built=1
  fi
elif [[ $print_ref == 0 ]] && ! podman image exists "$base"; then
  log "base: pulling $base"
  podman pull "$base" >&2 || die "cannot pull $base (no registry reachable?); leave BASE unset
to build a Debian base with debootstrap instead"
fi
base_id="$(podman image inspect --format '{{.Id}}' "$base" 2>/dev/null)" || {
  [[ $print_ref == 1 ]] && { echo "build-image.sh: the base $base is not built yet: run 'make image'" >&2; exit 3; }
  die "no base image $base"
}

# --- 2. the key of the dependency wheels, and the hash of every input --------------------------
deps="$(sed -n '/^dependencies = \[/,/^\]/p' "$repo/pyproject.toml" | sed -nE 's/^ *"([^"]+)",?.*/\1/p')"
[[ -n $deps ]] || die "found no dependencies = [...] in pyproject.toml"
# The `optuna` extra too: experiment pools (`type: optuna` signals) run in the controller's pod.
optuna_deps="$(sed -nE 's/^optuna = \["([^"]+)"\]/\1/p' "$repo/pyproject.toml")"
[[ -n $optuna_deps ]] || die "found no optuna = [...] extra in pyproject.toml"
deps="$deps"$'\n'"$optuna_deps"
deps_key="$(printf '%s\n' "$deps" "$base_id" | sha 12)"

inputs_hash="$(
  cd "$repo"
  {
    printf '%s\n' "$base_id" "$deps_key" "$image_repo"
    find Dockerfile scripts/build-image.sh pyproject.toml README.md autoscaler policies \
      -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha 16
)"
ref="$image_repo:inputs-$inputs_hash"
if [[ $print_ref == 1 ]]; then echo "$ref"; exit 0; fi

report() {  # report SECONDS KIND: size and figures, to stderr and $cache/last-build.env
  local size base_size
  size="$(podman image inspect --format '{{.Size}}' "$ref")"
  base_size="$(podman image inspect --format '{{.Size}}' "$base")"
  {
    echo "ref=$ref"; echo "tag=$image_repo:$version"; echo "base=$base"
    echo "size_bytes=$size"; echo "base_size_bytes=$base_size"
    echo "build=$2"; echo "seconds=$1"; echo "base_built=$base_built"
    echo "at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$cache/last-build.env"
  log "image: $ref ($2 in ${1}s)"
  log "image size: $(mb "$size") (base $(mb "$base_size"); the rest is /opt/venv)"
}

if [[ $force == 0 ]] && podman image exists "$ref"; then
  podman tag "$ref" "$image_repo:$version"
  log "up to date: $ref"
  report "$((SECONDS - t0))" cached
  exit 0
fi

# --- 3. wheels and the build ----------------------------------------------------------------
py="${PYTHON:-}"
if [[ -z $py ]]; then
  if [[ -x $repo/.venv/bin/python ]]; then py="$repo/.venv/bin/python"; else py=python3; fi
fi
"$py" -m pip --version >/dev/null 2>&1 || die "$py has no pip (set PYTHON, or run 'make install')"

wheels="$cache/wheels-$deps_key"
if [[ ! -f $wheels/.complete ]]; then
  # pip resolves with the base's own interpreter, so environment markers (redis wants
  # async-timeout below Python 3.11.3), the ABI and glibc are the image's, not this machine's.
  # It runs in a throwaway container on the host network (the build itself has none), with
  # this machine's CA bundle and proxy/index settings, so it reaches PyPI as pip here does.
  log "wheels: pip download of the dependencies, resolved by the base's Python"
  rm -rf "$wheels"; mkdir -p "$wheels" "$cache/pip-cache"
  printf '%s\n' "$deps" >"$wheels/requirements.txt"
  pass=()
  for var in HTTPS_PROXY https_proxy HTTP_PROXY http_proxy NO_PROXY no_proxy PIP_INDEX_URL \
      PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT; do
    [[ -n ${!var:-} ]] && pass+=(-e "$var")
  done
  ca="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}"
  [[ -f $ca ]] && pass+=(-v "$ca:/etc/ssl/host-ca.pem:ro" -e PIP_CERT=/etc/ssl/host-ca.pem)
  podman_ run --rm --network=host "${engine_run[@]}" --user 0:0 "${pass[@]}" \
    -v "$wheels:/wheels" -v "$cache/pip-cache:/pip-cache" -e PIP_CACHE_DIR=/pip-cache \
    -e PIP_DISABLE_PIP_VERSION_CHECK=1 --entrypoint sh "$base" -c '
      set -e
      python3 -c "import sys; assert sys.version_info >= (3, 11), sys.version" \
        || { echo "the base has Python $(python3 -V 2>&1); the project needs >= 3.11" >&2; exit 1; }
      python3 -m venv /tmp/venv
      /tmp/venv/bin/pip download --quiet --only-binary=:all: --dest /wheels -r /wheels/requirements.txt
      python3 -c "import platform; print(\"python=\" + platform.python_version(), \"glibc=\" + platform.libc_ver()[1], platform.machine())" >/wheels/.target
    ' >&2 || die "pip download of the dependencies failed (see above)"
  mv "$wheels/.target" "$wheels/.complete"
  log "wheels: $(ls "$wheels"/*.whl | wc -l) dependency wheels for $(cat "$wheels/.complete") in $wheels"
fi

context="$cache/context"
rm -rf "$context"; mkdir -p "$context/deps" "$context/app" "$context/src"
ln "$wheels"/*.whl "$context/deps/" 2>/dev/null || cp "$wheels"/*.whl "$context/deps/"
# Build the wheel from a copy of exactly what it contains, so nothing is written in the repo.
(cd "$repo" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' \
  pyproject.toml README.md autoscaler policies) | tar -xf - -C "$context/src"
log "wheel: pip wheel --no-deps (elastic-autoscaler $version)"
"$py" -m pip wheel --quiet --disable-pip-version-check --no-deps \
  --wheel-dir "$context/app" "$context/src" >&2 || die "pip wheel failed (see above)"
rm -rf "$context/src"

log "build: podman build FROM $base"
t_build=$SECONDS
podman build "${runtime[@]}" "${engine_run[@]}" --network=none --layers \
  --file "$repo/Dockerfile" --build-arg "BASE=$base" \
  --label "io.elastic-autoscaler.image.inputs=$inputs_hash" \
  --tag "$ref" --tag "$image_repo:$version" "$context" >&2 \
  || die "podman build failed (see above)"
log "build: done in $((SECONDS - t_build))s"
rm -rf "$context"
# Images of earlier inputs are removed (unless a container still uses one); shared layers stay.
# Intermediate images stay: they are the layer cache (`podman image prune` would drop the
# builder stage's, the installed dependencies among them, and the next build redoes them).
for old in $(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$image_repo"); do
  if [[ $old == "$image_repo:inputs-"* && $old != "$ref" ]]; then podman rmi "$old" >/dev/null 2>&1 || true; fi
done
report "$((SECONDS - t0))" "$([[ $base_built == 1 ]] && echo cold || echo built)"
