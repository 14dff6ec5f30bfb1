# The local Kubernetes test cluster (docs/test-cluster.md): build its binaries, start, stop.
#   make cluster-build               build etcd, kube-*, kubectl, kwok, helm (cached; needs Go)
#   eval "$$(make -s cluster-up)"    start a cluster that stays up; sets KUBECONFIG
#   make cluster-down                stop it
.PHONY: cluster-build cluster-up cluster-down cluster-status

cluster-build:
	bash scripts/k8s/build.sh

cluster-up: install
	@bash scripts/k8s/build.sh >&2
	@$(BIN)/python -m tests.cluster up

cluster-down: install
	@$(BIN)/python -m tests.cluster down

cluster-status: install
	@$(BIN)/python -m tests.cluster status

# `make test` (and so CI) builds the binaries first; a warm cache makes this a no-op.
TEST_DEPS += cluster-build
