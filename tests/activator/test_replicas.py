"""Two activator replicas, as the chart runs them: while one restarts (SIGTERM, drained, then
started again on its port) the other serves every request, and the controller's `activator`
source reads both — the one that is down adds nothing, it does not make the pool stale."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from autoscaler.config.sources import ActivatorSource
from autoscaler.signals import SignalRequest
from autoscaler.signals import activator as reader_module
from autoscaler.signals.activator import ActivatorReader
from tests.activator.rig import pool
from tests.servers.fake_openai import ROOT, FakeOpenAIProcess
from tests.servers.processes import free_port, wait_until


class Replica:
    """`autoscaler activator` on fixed ports, so it comes back where it was."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.port, self.admin = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin}"

    def start(self) -> Replica:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "activator", str(self.config),
                 "--listen", f"127.0.0.1:{self.port}", "--admin", f"127.0.0.1:{self.admin}",
                 "--drain-seconds", "5"],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        assert wait_until(lambda: _status(f"{self.admin_url}/readyz") == 200, 20), (
            self.log.read_text()
        )
        return self

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def complete(url: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"model": "m", "prompt": "hi", "max_tokens": 3}).encode()
    request = urllib.request.Request(f"{url}/v1/completions", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.load(answer)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return int(answer.status)
    except OSError:
        return 0


def test_one_replica_serves_while_the_other_restarts_and_the_reader_sums_both(
    tmp_path, monkeypatch
):
    backend = FakeOpenAIProcess(tmp_path).start()
    config = tmp_path / "activator.yaml"
    config.write_text(
        json.dumps({"installation": {"id": "test"}, "pools": [pool("chat", [backend.url])]})
    )
    first = Replica(config, tmp_path / "first.log")
    second = Replica(config, tmp_path / "second.log")
    # The reader resolves the admin Service's name to both replicas (the chart's headless
    # Service); here the two addresses are the two admin ports.
    monkeypatch.setattr(
        reader_module, "replica_urls", lambda url, resolve: [first.admin_url, second.admin_url]
    )
    reader = ActivatorReader()
    arrivals = SignalRequest(
        "chat", "served", ActivatorSource(url="http://activator.test:9091", metric="arrival_rate")
    )
    try:
        first.start()
        second.start()
        for replica in (first, second):
            status, body = complete(replica.url)
            assert status == 200 and body["choices"][0]["text"]
        (reading,) = reader.read([arrivals], 1.0).values()
        assert reading.error is None and reading.value and reading.value > 0

        assert first.stop() == 0  # drained and gone: its port refuses connections
        for _ in range(5):
            status, _ = complete(second.url)
            assert status == 200
        (reading,) = reader.read([arrivals], 2.0).values()
        assert reading.error is None, reading.error  # a replica that is down holds nothing

        first.start()  # back on its port
        status, _ = complete(first.url)
        assert status == 200
        assert second.stop() == 0
    finally:
        reader.close()
        first.kill()
        second.kill()
        backend.stop()
    for log in (first.log, second.log):
        assert "Traceback" not in log.read_text()
