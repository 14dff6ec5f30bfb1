# Real Prometheus and Redis servers for the signal tests (tests/servers, tests/signals):
#   make servers     install Debian's prometheus and redis-server where they are missing
# The tests start their own instances on free ports of 127.0.0.1; nothing stays running.
.PHONY: servers

servers:
	bash scripts/install-servers.sh

TEST_DEPS += servers
