"""The compiled modules (setup.py, autoscaler/speedups.py) give bit-identical results to
their pure-Python source, and are used when built, unless their source is newer.

Each mode runs in its own process: a module is compiled or not for a whole process.
"""

from __future__ import annotations

import ast
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoscaler import speedups
from tests.servers.fixtures import in_ci

ROOT = Path(__file__).resolve().parents[2]

# Replays that cover every compiled path: LLM serving through `queueing` (Erlang sizing,
# the one-unit event loop, signals with and without delay) and the baselines; GPU batch
# jobs of several sizes through `packing` (the general event loop, draining). Prints a hash
# of every unrounded start time, billed second and integrated area, and of each timeline.
REPLAY = r"""
import hashlib, json, random
import numpy as np
from autoscaler.config import load_config, parse_config
from autoscaler.sim.engine import Workload, run_policy
from autoscaler.sim.run import simulate
import autoscaler.sim.engine as engine

digest = hashlib.sha256()
measure = engine.measure
def capture(cluster, work, end, actions):
    digest.update(np.asarray(cluster.start, dtype=float).tobytes())
    digest.update(repr((cluster.billed_replica_seconds(end), cluster.busy_area,
                        cluster.ready_area, cluster.done_service, end, actions)).encode())
    return measure(cluster, work, end, actions)
engine.measure = capture

config = load_config("examples/simulated.yaml")
for delay in (0.0, 15.0):
    pool = config.pools[0]
    if delay:
        sim = pool.simulation.model_copy(update={"signal_delay": delay})
        config.pools[0] = pool.model_copy(update={"simulation": sim})
    report = simulate(config, compare=("hpa", "keda", "kpa"))
    for run in report.runs:
        digest.update(json.dumps([run.metrics.get("gpu_hours"), run.timeline],
                                 sort_keys=True, default=str).encode())

batch = parse_config('''
controller: {interval: 10s}
pools:
  - name: b
    target: {kind: simulated}
    max: 20
    startup: 60s
    policy: {type: packing, units_per_replica: 8}
    behavior: {scale_down: {stabilization_window: 30s}, scale_to_zero_after: 120s}
    simulation:
      service: {type: gpu-batch, gpus_per_node: 8}
      cost_per_hour: 1.0
      wait_slo: 120s
''', env={}).pools[0]
rng = random.Random(5)
arrivals = np.sort(np.array([rng.uniform(0, 20000) for _ in range(400)]))
durations = np.array([rng.choice([30.0, 300.0, 3600.0]) for _ in range(400)])
gpus = np.array([rng.choice([1, 2, 4, 8]) for _ in range(400)], dtype=np.int64)
work = Workload(arrivals, durations, gpus, 8, 8, 1.0, 60.0, 120.0, 0.0, True, "jobs")
run = run_policy(batch, work, batch.policy, "packing", 10.0)
digest.update(json.dumps([run.metrics["gpu_hours"], run.timeline], default=str).encode())
print(digest.hexdigest())
"""


def _python(code: str, pure: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AUTOSCALER_PURE_PYTHON"}
    if pure:
        env["AUTOSCALER_PURE_PYTHON"] = "1"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )


def _status(pure: bool) -> dict[str, str]:
    proc = _python(
        "import json; from autoscaler import speedups; print(json.dumps(speedups.status()))",
        pure,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _require_compiled() -> None:
    status = _status(pure=False)
    if all(v == "compiled" for v in status.values()):
        return
    why = "; ".join(f"{k}: {v}" for k, v in status.items() if v != "compiled")
    if in_ci():
        pytest.fail(f"CI=true and the speed-ups are not compiled: {why}", pytrace=False)
    pytest.skip(f"not compiled here: {why}")


def test_compiled_and_pure_python_replays_are_bit_identical():
    _require_compiled()
    assert set(_status(pure=True).values()) == {"pure Python (AUTOSCALER_PURE_PYTHON=1)"}
    compiled, pure = _python(REPLAY, pure=False), _python(REPLAY, pure=True)
    assert compiled.returncode == 0, compiled.stderr
    assert pure.returncode == 0, pure.stderr
    assert compiled.stdout.strip() == pure.stdout.strip()
    assert len(compiled.stdout.strip()) == 64


def test_setup_compiles_the_modules_speedups_lists():
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = next(
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED"
    )
    assert tuple(ast.literal_eval(listed)) == speedups.COMPILED
    for name in speedups.COMPILED:  # each compiled module has its C types beside it
        assert (ROOT / (name.replace(".", "/") + ".pxd")).exists(), name


def _tree(tmp_path: Path, built_at: float, source_at: float, types_at: float | None) -> Path:
    folder = tmp_path / "pkg"
    folder.mkdir(parents=True)
    built = folder / ("mod" + importlib.machinery.EXTENSION_SUFFIXES[0])
    source = folder / "mod.py"
    for path, at in ((built, built_at), (source, source_at)):
        path.write_text("")
        os.utime(path, (at, at))
    if types_at is not None:
        types = folder / "mod.pxd"
        types.write_text("")
        os.utime(types, (types_at, types_at))
    return tmp_path


def test_a_compiled_module_older_than_its_source_or_types_is_stale(tmp_path):
    now = time.time()
    assert speedups.stale(_tree(tmp_path / "a", now, now - 60, now - 60), ["pkg.mod"]) == []
    assert speedups.stale(_tree(tmp_path / "b", now, now + 5, now - 60), ["pkg.mod"]) == [
        "pkg.mod"
    ]
    assert speedups.stale(_tree(tmp_path / "c", now, now - 60, now + 5), ["pkg.mod"]) == [
        "pkg.mod"
    ]
    # no .pxd: an installed wheel, whose file times say nothing
    assert speedups.stale(_tree(tmp_path / "d", now, now + 5, None), ["pkg.mod"]) == []


def test_an_edited_source_runs_as_python_with_a_warning(tmp_path):
    """A copy of the checkout where one compiled module's source is newer than its build:
    every compiled module then runs from source, and a warning says to rebuild."""
    _require_compiled()
    copy = tmp_path / "tree"
    for package in ("autoscaler", "policies"):  # copy2 keeps the files' times
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("*.pyc"))
    edited = copy / "autoscaler" / "sim" / "fast_loop.py"
    built = speedups.compiled_file(copy, "autoscaler.sim.fast_loop")
    assert built is not None
    later = built.stat().st_mtime + 10
    os.utime(edited, (later, later))
    code = (
        "import json, warnings; warnings.simplefilter('always')\n"
        "from autoscaler import speedups; import autoscaler.sim.cluster as c\n"
        "print(json.dumps([c.__file__, speedups.status()]))"
    )
    env = {**os.environ, "PYTHONPATH": str(copy)}
    env.pop("AUTOSCALER_PURE_PYTHON", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    origin, status = json.loads(proc.stdout)
    assert origin == str(copy / "autoscaler" / "sim" / "cluster.py")
    assert all(v.startswith("pure Python (compiled autoscaler.sim.fast_loop older") for v in
               status.values()), status
    assert "run `make install`" in proc.stderr
