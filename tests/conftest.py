"""Suite-wide pytest setup: the real Kubernetes test cluster fixtures (tests/cluster)."""

pytest_plugins = ["tests.cluster.pytest_plugin"]
