"""`autoscaler activator`: bad input is one line and exit 2, never a traceback; a running
activator forwards, and on SIGTERM lets a forwarded request finish and exits 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscaler.cli import cli
from tests.activator.rig import pool
from tests.activator.test_reload import obj
from tests.servers.fake_openai import ROOT, FakeOpenAIProcess
from tests.servers.processes import free_port, wait_until

# `autoscaler activator` with AutoscalingPool objects read from a JSON file the test
# rewrites (argv[1]) instead of a cluster: only the lister and the connection are stand-ins.
CRD_BOOT = """
import json, sys
import autoscaler.clients.kube as kube
import autoscaler.kube.pools as pools

class FileLister:
    def __init__(self, api_client, namespaces):
        self.namespaces = list(namespaces)

    def list(self):
        with open(sys.argv[1]) as f:
            return [o for o in json.load(f) if o["metadata"]["namespace"] in self.namespaces]

kube.connect = lambda kubeconfig=None, **kw: None
pools.PoolLister = FileLister
from autoscaler.cli import cli
cli(["activator", *sys.argv[2:]], prog_name="autoscaler")
"""


def write(folder: Path, *pools: dict) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "activator.yaml"
    path.write_text(json.dumps({"installation": {"id": "test"}, "pools": list(pools)}))
    return str(path)


def invoke(*args: str):
    return CliRunner().invoke(cli, ["activator", *args])


def no_pool_with_activator() -> dict:
    plain = pool("plain", ["http://127.0.0.1:9"])
    del plain["activator"]
    return plain


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "cannot read"),
        (["{plain}"], "no pool has an `activator` section"),
        (["{bad}"], "pools[0].activator.backend"),
        (["{good}", "--listen", "nowhere"], "write HOST:PORT"),
        (["{good}", "--admin", "::1:80"], "IPv6 host in brackets"),
        (["{good}", "--listen", "127.0.0.1:99999"], "write HOST:PORT"),
        (["{good}", "--drain-seconds", "soon"], "--drain-seconds"),
        (["{good}", "--listen", "127.0.0.1:{busy}"], "address already in use"),
        # The pool sources, as `autoscaler run` takes them.
        ([], "give a configuration file (CONFIG), or --crd-pools, or both"),
        (["{good}", "--namespace", "llm"],
         "--namespace chooses where AutoscalingPools are read; add --crd-pools"),
        (["{settings}"], "pools: required field is missing"),
        (["{settings}", "--crd-pools", "--kubeconfig", "{missing}"], "no Kubernetes credentials"),
        (["--crd-pools", "-n", "llm", "--kubeconfig", "{missing}"], "no Kubernetes credentials"),
        (["{bad}", "--crd-pools"], "pools[0].activator.backend"),
        (["{good}", "--reload-seconds", "0"], "--reload-seconds"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_error(tmp_path, args, message):
    bad = pool("bad", ["http://127.0.0.1:9"])
    bad["activator"]["backend"]["service"] = "also"
    files = {
        "missing": str(tmp_path / "nope.yaml"),
        "plain": write(tmp_path / "plain", no_pool_with_activator()),
        "bad": write(tmp_path / "bad", bad),
        "good": write(tmp_path / "good", pool("p", ["http://127.0.0.1:9"])),
        "settings": write(tmp_path / "settings"),
    }
    (tmp_path / "settings" / "activator.yaml").write_text("installation: {id: test}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = [a.format(busy=port, **files) for a in args]
        if "--admin" not in argv:
            argv += ["--admin", "127.0.0.1:0"]
        if "--listen" not in argv:
            argv += ["--listen", "127.0.0.1:0"]
        result = invoke(*argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_it_serves_and_drains_on_sigterm(tmp_path):
    backend = FakeOpenAIProcess(tmp_path, delay_ms=700).start()
    listen, admin = free_port(), free_port()
    config = write(tmp_path, pool("p", [backend.url]))
    log = open(tmp_path / "activator.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "activator", config, "--listen",
         f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}", "--drain-seconds", "10"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert wait_until(lambda: _get(f"http://127.0.0.1:{admin}/healthz")[0] == 200, 20), (
            tmp_path / "activator.log"
        ).read_text()
        answer: dict = {}

        def post() -> None:
            body = json.dumps({"model": "m", "prompt": "hi", "max_tokens": 3}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{listen}/v1/completions",
                                             data=body, method="POST")  # fmt: skip
            with urllib.request.urlopen(request, timeout=10) as r:
                answer["status"], answer["body"] = r.status, json.load(r)

        sender = threading.Thread(target=post)
        sender.start()
        assert wait_until(lambda: _stats(admin)["in_flight"] == 1, 5)
        proc.send_signal(signal.SIGTERM)
        sender.join(10)
        assert answer["status"] == 200 and answer["body"]["choices"][0]["text"]
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        backend.stop()
    assert "Traceback" not in (tmp_path / "activator.log").read_text()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status, r.read()


def _stats(admin: int) -> dict:
    return json.loads(_get(f"http://127.0.0.1:{admin}/activator/v1/stats")[1])["pools"]["p"]


def test_with_crd_pools_it_serves_at_once_and_fronts_objects_of_its_namespace_as_they_come(
    tmp_path,
):
    backend = FakeOpenAIProcess(tmp_path).start()
    objects = tmp_path / "objects.json"
    objects.write_text("[]")
    listen, admin = free_port(), free_port()
    log = open(tmp_path / "activator.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-c", CRD_BOOT, str(objects), "--crd-pools", "--reload-seconds",
         "0.1", "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "POD_NAMESPACE": "llm"},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert wait_until(lambda: _get(f"http://127.0.0.1:{admin}/readyz")[0] == 200, 20), (
            tmp_path / "activator.log"
        ).read_text()
        status, body = _post(listen)
        assert status == 404 and "no pool is fronted yet" in body["error"]["message"]
        listed = [obj(pool("chat", [backend.url])), obj(pool("theirs", [backend.url]), "team")]
        fresh = tmp_path / "objects.new"
        fresh.write_text(json.dumps(listed))
        os.replace(fresh, objects)
        assert wait_until(lambda: _post(listen)[0] == 200, 10)
        stats = json.loads(_get(f"http://127.0.0.1:{admin}/activator/v1/stats")[1])
        assert list(stats["pools"]) == ["chat"]  # the other namespace is not read
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        backend.stop()
    text = (tmp_path / "activator.log").read_text()
    assert "fronting pool chat (from AutoscalingPool llm/chat)" in text, text
    assert "Traceback" not in text


def _post(port: int) -> tuple[int, dict]:
    body = json.dumps({"model": "m", "prompt": "hi", "max_tokens": 3}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                     method="POST")  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
