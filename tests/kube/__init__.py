"""Tests against a real Kubernetes API server (the local test cluster or KUBECONFIG's)."""
