"""The controller image as built by `make image`: its entry point answers `--version` and
validates the shipped examples; it runs as uid 65532 on a read-only root filesystem and holds
the installed wheels only (no pip, no source tree); and the same image serves the activator
(`autoscaler activator`), which forwards a request and exits 0 on SIGTERM.

Every container runs as the chart's pods do: read-only root, /tmp a tmpfs, no capabilities,
no privilege escalation (tests/image/engine.py). The controller against a real API server is
in test_controller_container.py.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
import urllib.request
import uuid
from pathlib import Path

from tests.image.engine import REPO_ROOT, ULIMITS, hardened, podman, run
from tests.servers.fake_openai import FakeOpenAIProcess
from tests.servers.processes import free_port, wait_until

VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))


def test_the_entry_point_is_autoscaler_and_answers_version(image: str) -> None:
    done = run(image, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"autoscaler, version {VERSION}", done.stdout


def test_it_validates_the_shipped_examples(image: str) -> None:
    assert EXAMPLES
    names = [f"/examples/{p.name}" for p in EXAMPLES]
    done = run(image, "validate", "-o", "json", *names,
               options=("-v", f"{REPO_ROOT / 'examples'}:/examples:ro"))  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr


def test_the_image_runs_as_non_root_on_a_read_only_root_with_the_installed_wheels_only(
    image: str,
) -> None:
    [info] = json.loads(podman("image", "inspect", image, check=True).stdout)
    config = info["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["autoscaler"]
    assert config["Cmd"][0] == "run"
    probe = """
import importlib.metadata, importlib.util, json, os, sys
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w"):
            pass
        return True
    except OSError:
        return False
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "prefix": sys.prefix,
    "dists": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
    "pip": importlib.util.find_spec("pip") is not None,
    "writable": {p: writable(p) for p in ("/", "/opt/venv", "/etc", "/tmp")},
    "leftovers": [p for p in ("/wheels", "/src", "/root/.cache") if os.path.exists(p)],
}))
"""
    done = run(image, "-c", probe, options=("--entrypoint", "python3"))
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got["uid"], got["gid"]) == (65532, 65532)
    assert got["prefix"] == "/opt/venv"
    assert got["writable"] == {"/": False, "/opt/venv": False, "/etc": False, "/tmp": True}
    assert "elastic-autoscaler" in got["dists"]
    # The optuna extra ships too, so experiment pools (`type: optuna`) work in the pod.
    assert "optuna" in got["dists"], got["dists"]
    assert not {"pip", "setuptools"} & set(got["dists"]), got["dists"]
    assert not got["pip"]
    assert got["leftovers"] == []


def test_the_same_image_serves_the_activator_and_drains_on_sigterm(
    image: str, tmp_path: Path
) -> None:
    backend = FakeOpenAIProcess(tmp_path).start()
    listen, admin = free_port(), free_port()
    folder = tmp_path / "config"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # read by uid 65532 inside
    config = folder / "activator.yaml"
    config.write_text(json.dumps({"installation": {"id": "test"}, "pools": [{
        "name": "p",
        "target": {"kind": "deployment", "namespace": "llm", "name": "p"},
        "max": 4,
        "signals": {"queue": {"source": {"type": "static", "value": 0}}},
        "policy": {"type": "queue-depth", "target_per_replica": 8},
        "activator": {"backend": {"urls": [backend.url]}},
    }]}))  # fmt: skip
    config.chmod(0o644)
    name = f"ea-activator-{uuid.uuid4().hex[:8]}"
    started = podman(
        "run", "-d", "--name", name, "--network=host", *ULIMITS, *hardened(),
        "-v", f"{folder}:/etc/autoscaler:ro", image,
        "activator", "/etc/autoscaler/activator.yaml", "--listen", f"127.0.0.1:{listen}",
        "--admin", f"127.0.0.1:{admin}", "--drain-seconds", "5", "--json-logs",
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr

        def healthy() -> bool:
            if podman("container", "exists", name).returncode != 0:
                return False
            try:
                return status(f"http://127.0.0.1:{admin}/healthz") == 200
            except OSError:
                return False

        assert wait_until(healthy, 60), logs(name)
        body = json.dumps({"model": "m", "prompt": "hi", "max_tokens": 3}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{listen}/v1/completions", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with opener().open(request, timeout=20) as r:
            assert r.status == 200
            assert json.load(r)["choices"][0]["text"]
        t = time.monotonic()
        podman("stop", "--time", "45", name, check=True, timeout=60)
        assert time.monotonic() - t < 15, "the activator took long to stop on SIGTERM"
        assert exit_code(name) == 0, logs(name)
        assert "Traceback" not in logs(name)
    finally:
        podman("rm", "--force", name)
        backend.stop()


# -- helpers shared with test_controller_container.py -----------------------------------------
def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status(url: str) -> int:
    with opener().open(url, timeout=2) as r:
        return int(r.status)


def get(url: str) -> str:
    with opener().open(url, timeout=5) as r:
        return str(r.read().decode())


def logs(name: str) -> str:
    done = podman("logs", name)
    return done.stdout + done.stderr


def exit_code(name: str) -> int:
    out = podman("inspect", "--format", "{{.State.ExitCode}}", name, check=True).stdout
    return int(re.sub(r"\s", "", out))
