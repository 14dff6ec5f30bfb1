"""`sweep --executor ray` against a real two-node Ray cluster on 127.0.0.1 (started once for
this module by tests/servers/ray_cluster.py, stopped after, even on failure): a grid and
a search give the same results as local processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from autoscaler.cli import cli
from tests.servers.processes import free_port
from tests.servers.ray_cluster import RayCluster, ray_cluster  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
LLM = str(ROOT / "examples" / "llm-serving.yaml")
GRID = [
    "--param", "policy.policies.0.max_utilization=0.7,0.8,0.9",
    "--param", "behavior.scale_down.stabilization_window=60,300",
]  # fmt: skip
SEARCH = ["--search", "nsga2", "--trials", "4", "--batch", "2", "--seed", "7"]


def sweep(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["sweep", LLM, *args, "-o", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """The document without what legitimately differs between executors: which one ran it
    and how long each simulation took on its worker (`wall_seconds`)."""
    data = {k: v for k, v in data.items() if k != "executor"}
    data["variants"] = [
        {k: v for k, v in r.items() if k != "wall_seconds"} for r in data["variants"]
    ]
    data["front"] = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in data["front"]]
    if "best" in data:
        data["best"] = {
            f: {k: v for k, v in r.items() if k != "wall_seconds"} for f, r in data["best"].items()
        }
    return data


@pytest.fixture(scope="module")
def ray_address(ray_cluster: RayCluster) -> str:  # noqa: F811 - the imported fixture
    return ray_cluster.address


def test_the_cluster_has_two_worker_nodes(ray_cluster: RayCluster) -> None:  # noqa: F811
    assert ray_cluster.cpus() == 2
    assert len(ray_cluster.nodes) == 2


def test_a_grid_on_ray_equals_the_grid_on_local_processes(ray_address: str) -> None:
    on_ray = sweep(*GRID, "--executor", "ray", "--address", ray_address)
    local = sweep(*GRID, "--workers", "2")
    assert on_ray["executor"] == "ray" and local["executor"] == "local"
    assert len(on_ray["variants"]) == 6
    assert comparable(on_ray) == comparable(local)


def test_a_search_on_ray_equals_the_search_on_local_processes(ray_address: str) -> None:
    on_ray = sweep(*SEARCH, "--executor", "ray", "--address", ray_address)
    local = sweep(*SEARCH, "--workers", "2")
    assert len(on_ray["variants"]) == 4 * 4  # four trials for each of four families
    assert comparable(on_ray) == comparable(local)


def test_an_address_nobody_answers_on_is_exit_2_naming_it() -> None:
    port = free_port()
    result = CliRunner().invoke(
        cli, ["sweep", LLM, *GRID, "--executor", "ray", "--address", f"127.0.0.1:{port}"]
    )
    assert result.exit_code == 2, result.output
    assert f"--address 127.0.0.1:{port}: no Ray head answers there" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "ray"], "--executor ray needs --address HOST:PORT"),
        (["--executor", "ray", "--address", "nowhere"], "write the Ray head's HOST:PORT"),
        (["--address", "127.0.0.1:6379"], "--address is for --executor ray"),
    ],
)
def test_bad_executor_options_are_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["sweep", LLM, *GRID, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
