#!/usr/bin/env bash
# Builds the test cluster's binaries from their Go modules and caches them by version.
#
# What it builds (versions pinned in scripts/k8s/versions.env):
#   etcd                                    go.etcd.io/etcd/server/v3, in its own wrapper module
#   kube-apiserver, kube-controller-manager,
#   kube-scheduler, kubectl                 k8s.io/kubernetes, one wrapper module with a
#                                           `replace` line per staging module, one `go build`
#   kwok                                    sigs.k8s.io/kwok/cmd/kwok (go install)
#   helm                                    helm.sh/helm/v3/cmd/helm (go install)
#
# Output: ${XDG_CACHE_HOME:-$HOME/.cache}/elastic-autoscaler/k8s-<versions>/bin
# Work that is done is skipped: each binary is checked, and a stamp file marks a complete set.
#
# Usage: scripts/k8s/build.sh [--print-bin-dir] [--force]
#   --print-bin-dir  print the cache's bin folder and exit (builds nothing)
#   --force          rebuild every binary even if it is present
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$here/versions.env"

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/elastic-autoscaler"
set_name="k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-kwok-${KWOK_VERSION}-helm-${HELM_VERSION}"
root="$cache_root/$set_name"
bin="$root/bin"
stamp="$root/.complete"

force=0
for arg in "$@"; do
  case "$arg" in
    --print-bin-dir) echo "$bin"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

t0=$SECONDS
log() { printf '[k8s-build %4ds] %s\n' "$((SECONDS - t0))" "$*"; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

all_bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)

have() {  # have NAME...: every named binary exists and is executable
  local b
  for b in "$@"; do [[ -x "$bin/$b" ]] || return 1; done
}

if [[ $force == 0 && -f $stamp ]] && have "${all_bins[@]}"; then
  log "up to date: $bin"
  exit 0
fi

# --- Go ---------------------------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
  die "Go is not installed or not on PATH. The test cluster is built from source and needs
Go >= 1.26 (https://go.dev/dl/). Install it, then run 'make cluster-build' again."
fi
go_version="$(go env GOVERSION)"           # e.g. go1.26.8
go_minor="$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$go_version")"
if ! [[ $go_minor =~ ^[0-9]+$ ]] || (( go_minor < 26 )); then
  die "Go $go_version is too old: Kubernetes ${K8S_VERSION} needs Go >= 1.26 (https://go.dev/dl/)."
fi

mkdir -p "$bin" "$root/src"
exec 9>"$root/.lock"
if command -v flock >/dev/null 2>&1; then
  flock -n 9 || { log "another build of $set_name is running; waiting for it"; flock 9; }
  if [[ $force == 0 && -f $stamp ]] && have "${all_bins[@]}"; then
    log "up to date (built by the other run): $bin"; exit 0
  fi
fi

export CGO_ENABLED=0
export GOFLAGS="-trimpath"
export GOTOOLCHAIN=local           # use this Go; never download another toolchain
export GO111MODULE=on
if [[ -z "${GOSUMDB+x}" ]]; then
  # The checksum database is optional when it cannot be reached; the proxy still serves modules.
  if command -v curl >/dev/null 2>&1 && ! curl -fsS -m 10 -o /dev/null https://sum.golang.org/latest 2>/dev/null; then
    log "sum.golang.org is unreachable: building with GOSUMDB=off (modules come from ${GOPROXY:-$(go env GOPROXY)})"
    export GOSUMDB=off
  fi
fi

log "building $set_name with $go_version on $(nproc 2>/dev/null || echo '?') cores"
log "cache: $root"
log "go build cache: $(go env GOCACHE); module cache: $(go env GOMODCACHE)"

# Build into a staging folder and move finished binaries in, so bin/ never holds a partial one.
stage="$root/stage"
rm -rf "$stage"; mkdir -p "$stage"

quiet_go() {  # run go, dropping its per-module "go: added ..." chatter (downloads stay visible)
  go "$@" 2>&1 | sed -uE '/^go: (added|upgraded|downgraded) /d' >&2
}

install_bins() {
  local b
  for b in "$@"; do
    [[ -x "$stage/$b" ]] || die "expected $stage/$b after the build, but it is missing"
    mv -f "$stage/$b" "$bin/$b"
  done
}

# --- etcd -------------------------------------------------------------------------------------
build_etcd() {
  local src="$root/src/etcd" t=$SECONDS
  log "etcd ${ETCD_VERSION}: preparing wrapper module in $src"
  rm -rf "$src"; mkdir -p "$src"
  (
    cd "$src"
    go mod init elastic-autoscaler.local/etcd-build 2>/dev/null || die "go mod init failed in $src"
    log "etcd ${ETCD_VERSION}: resolving modules (go get)"
    quiet_go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
    log "etcd ${ETCD_VERSION}: compiling"
    go build -o "$stage/etcd" go.etcd.io/etcd/server/v3
  )
  install_bins etcd
  log "etcd ${ETCD_VERSION}: done in $((SECONDS - t))s"
}

# --- Kubernetes -------------------------------------------------------------------------------
build_kubernetes() {
  local src="$root/src/kubernetes" t=$SECONDS
  local staging_version="v0.${K8S_VERSION#v1.}"       # v1.36.3 -> v0.36.3
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}" # v1.36.3 -> 36
  log "kubernetes ${K8S_VERSION}: downloading k8s.io/kubernetes (large; first time takes minutes)"
  local upstream_mod
  upstream_mod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" \
    | sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?$/\1/p')"
  [[ -f $upstream_mod ]] || die "could not download k8s.io/kubernetes@${K8S_VERSION} (no go.mod)"

  # The staging modules are exactly the ones upstream replaces with ./staging/src/k8s.io/<m>.
  local staging
  staging="$(sed -nE 's#^[[:space:]]*(k8s\.io/[A-Za-z0-9._-]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\1#p' \
    "$upstream_mod" | sort -u)"
  [[ -n $staging ]] || die "found no staging replace lines in $upstream_mod"
  local go_line godebug_lines
  go_line="$(grep -E '^go [0-9]' "$upstream_mod" | head -1)"
  godebug_lines="$(grep -E '^godebug' "$upstream_mod" || true)"
  log "kubernetes ${K8S_VERSION}: upstream needs '${go_line}'; $(wc -l <<<"$staging") staging modules at ${staging_version}"

  rm -rf "$src"; mkdir -p "$src"
  {
    echo "module elastic-autoscaler.local/kubernetes-build"
    echo
    echo "$go_line"
    [[ -n $godebug_lines ]] && { echo; echo "$godebug_lines"; }
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    echo "replace ("
    local m
    for m in $staging; do echo "	$m => $m ${staging_version}"; done
    echo ")"
  } >"$src/go.mod"

  local pkgs=(
    k8s.io/kubernetes/cmd/kube-apiserver
    k8s.io/kubernetes/cmd/kube-controller-manager
    k8s.io/kubernetes/cmd/kube-scheduler
    k8s.io/kubernetes/cmd/kubectl
  )
  local build_date ldflags="" p
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=${K8S_VERSION} -X $p.gitMajor=1 -X $p.gitMinor=${minor}"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=${build_date}"
  done
  (
    cd "$src"
    log "kubernetes ${K8S_VERSION}: resolving modules (go get; several hundred MB the first time)"
    quiet_go get "${pkgs[@]/%/@${K8S_VERSION}}"
    log "kubernetes ${K8S_VERSION}: compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (the long part)"
    go build -mod=mod -ldflags "-s -w${ldflags}" -o "$stage/" "${pkgs[@]}"
  )
  install_bins kube-apiserver kube-controller-manager kube-scheduler kubectl
  log "kubernetes ${K8S_VERSION}: done in $((SECONDS - t))s"
}

# --- kwok and helm (plain go install, no replace directives) ----------------------------------
build_kwok() {
  local t=$SECONDS
  log "kwok ${KWOK_VERSION}: go install sigs.k8s.io/kwok/cmd/kwok"
  # kwok's own version constant (pkg/consts.Version) is already right at the tag.
  GOBIN="$stage" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  install_bins kwok
  log "kwok ${KWOK_VERSION}: done in $((SECONDS - t))s"
}

build_helm() {
  local t=$SECONDS
  log "helm ${HELM_VERSION}: go install helm.sh/helm/v3/cmd/helm"
  GOBIN="$stage" go install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  install_bins helm
  log "helm ${HELM_VERSION}: done in $((SECONDS - t))s"
}

if [[ $force == 1 ]]; then rm -f "$stamp"; fi
if [[ $force == 0 ]] && have etcd; then log "etcd: present, skipping"; else build_etcd; fi
if [[ $force == 0 ]] && have kwok; then log "kwok: present, skipping"; else build_kwok; fi
if [[ $force == 0 ]] && have helm; then log "helm: present, skipping"; else build_helm; fi
if [[ $force == 0 ]] && have kube-apiserver kube-controller-manager kube-scheduler kubectl; then
  log "kubernetes: present, skipping"
else
  build_kubernetes
fi
rm -rf "$stage"

{
  echo "set=$set_name"
  echo "go=$go_version"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "seconds=$((SECONDS - t0))"
} >"$stamp"

log "versions:"
# (|| true: head may close the pipe early, which pipefail would otherwise report as a failure)
{ "$bin/etcd" --version | head -1 | sed 's/^/    /'; } || true
{ "$bin/kube-apiserver" --version | sed 's/^/    /'; } || true
{ "$bin/kubectl" version --client 2>/dev/null | head -1 | sed 's/^/    /'; } || true
{ "$bin/kwok" --version 2>/dev/null | head -1 | sed 's/^/    /'; } || true
{ "$bin/helm" version --short | sed 's/^/    /'; } || true
log "all binaries ready in $bin ($((SECONDS - t0))s)"
