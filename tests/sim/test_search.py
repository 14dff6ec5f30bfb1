"""`autoscaler sweep --search tpe|nsga2`: Optuna over each family's --tune knobs on the
bundled example trace, with small budgets (a few seconds a test)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner

from autoscaler.cli import cli
from autoscaler.config import load_config
from autoscaler.sim.front import short_names
from autoscaler.sim.search import _distributions, spaces
from tests.unit.test_cli_input import interrupt

ROOT = Path(__file__).resolve().parents[2]
LLM = str(ROOT / "examples" / "llm-serving.yaml")
FAMILIES = {"composite", "hpa", "keda", "kpa"}


def run(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, ["sweep", LLM, *args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def search(*args: str) -> dict[str, Any]:
    return json.loads(run(*args, "-o", "json").stdout)


def without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without `wall_seconds`, how long each simulation took (never the same twice)."""
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]


def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["cost"] <= b["cost"]
        and a["slo_attainment"] >= b["slo_attainment"]
        and (a["cost"] < b["cost"] or a["slo_attainment"] > b["slo_attainment"])
    )


def test_nsga2_prints_a_labelled_non_dominated_front():
    data = search("--search", "nsga2", "--trials", "4", "--batch", "2", "--workers", "2")
    assert data["search"] == "nsga2" and data["trials_per_family"] == 4
    assert len(data["variants"]) == 16
    assert {r["family"] for r in data["variants"]} == FAMILIES
    front = data["front"]
    assert front
    for row in front:
        assert not any(dominates(o, row) for o in data["variants"]), row
        assert row["family"] in FAMILIES and row["knobs"], row
    # Every point no other beats is on the front, once.
    points = {(r["cost"], r["slo_attainment"]) for r in front}
    assert len(points) == len(front)
    best = {(r["cost"], r["slo_attainment"]) for r in data["variants"]
            if not any(dominates(o, r) for o in data["variants"])}  # fmt: skip
    assert points == best


def test_the_search_keeps_to_the_grids_knobs_and_bounds():
    pool = load_config(LLM, env={}).pools[0]
    bounds = {s.family: {k.path: (k.low, k.high) for k in s.knobs} for s in spaces(pool, 8, False)}
    assert set(bounds) == FAMILIES
    assert bounds["composite"]["policy.policies.0.max_utilization"] == (0.7, 0.9)
    assert bounds["hpa"]["policy.metrics.0.target_utilization"] == (0.3, 0.95)
    assert bounds["keda"]["policy.triggers.0.target"] == (0.3 * 8, 8.0)
    data = search("--search", "tpe", "--trials", "3", "--batch", "3", "--workers", "1")
    for row in data["variants"]:
        for path, value in row["params"].items():
            low, high = bounds[row["family"]][path]
            assert low <= value <= high, (row["family"], path, value)


def test_tpe_names_the_cheapest_setting_per_family_and_is_reproducible():
    args = ("--search", "tpe", "--trials", "3", "--batch", "3", "--seed", "5")
    first = search(*args, "--workers", "1")
    again = search(*args, "--workers", "2")
    assert set(first["best"]) == FAMILIES
    assert without_timing(first["variants"]) == without_timing(again["variants"])
    other = search("--search", "tpe", "--trials", "3", "--batch", "3", "--seed", "6")
    assert [r["params"] for r in other["variants"]] != [r["params"] for r in first["variants"]]


def test_the_table_labels_each_row_by_family_and_settings():
    result = run("--search", "nsga2", "--trials", "2", "--batch", "2", "--all")
    out = result.stdout
    assert "Pareto front and the points it beats" in out
    assert "ours (composite)" in out and "max_utilization=" in out
    assert "target_utilization=" in out and "on front" in out
    # Progress with an ETA on standard error, not mixed into the result.
    assert "left" in result.stderr and "left" not in out


def test_resume_carries_a_stopped_study_on_to_the_same_trials(tmp_path):
    storage = str(tmp_path / "study.log")
    args = ("--search", "nsga2", "--batch", "2", "--seed", "3", "--workers", "1")
    search(*args, "--trials", "2", "--storage", storage)
    resumed = run(*args, "--trials", "4", "--storage", storage, "--resume", "-o", "json")
    assert "8 finished trial(s) found" in resumed.stderr
    data = json.loads(resumed.stdout)
    assert len(data["variants"]) == 16
    unstopped = search(*args, "--trials", "4")
    assert without_timing(data["variants"]) == without_timing(unstopped["variants"])


def test_resume_runs_again_the_trials_a_stop_left_unfinished(tmp_path):
    storage = str(tmp_path / "study.db")
    url = f"sqlite:///{storage}"
    args = ("--search", "tpe", "--batch", "2", "--workers", "1", "--storage", url)
    search(*args, "--trials", "2")
    # As a Ctrl-C between asking and telling leaves it: one trial asked, never told.
    study = optuna.load_study(study_name="sweep-llm-chat-tpe:composite", storage=url)
    ours = spaces(load_config(LLM, env={}).pools[0], 8, False)[0]
    asked = study.ask(_distributions(optuna, ours))
    resumed = run(*args, "--trials", "3", "--resume", "-o", "json")
    assert "8 finished trial(s) found, 1 unfinished to run again" in resumed.stderr
    data = json.loads(resumed.stdout)
    assert len(data["variants"]) == 12  # every family brought to 3, none past it
    ours_rows = [r for r in data["variants"] if r["family"] == "composite"]
    assert [r["trial"] for r in ours_rows] == [0, 1, 2]
    assert ours_rows[2]["params"] == asked.params


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--search", "grid"], "'grid' is not one of 'tpe', 'nsga2'"),
        (["--search", "tpe", "--trials", "0"], "'--trials': 0 is not in the range"),
        (["--search", "nsga2", "--batch", "1"], "'--batch': 1 is not in the range"),
        (["--search", "tpe", "--seed", "-1"], "'--seed': -1 is not in the range"),
        (["--tune", "--trials", "5"], "--trials is for a search: add --search tpe"),
        (["--tune", "--seed", "5"], "--seed is for a search"),
        (["--search", "tpe", "--resume"], "--resume carries on a study kept in --storage"),
        (["--search", "tpe", "--param", "min=0,1"], "--param is for the grid"),
        (["--search", "tpe", "--storage", "/no/such/dir/s.log"], "folder '/no/such/dir'"),
    ],
)
def test_bad_search_options_are_exit_2_with_one_clear_line(args, message):
    result = run(*args, code=2)
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_study_is_never_silently_mixed_with_another(tmp_path):
    storage = str(tmp_path / "s.log")
    args = ("--search", "tpe", "--trials", "2", "--batch", "2", "--storage", storage)
    nothing = run(*args, "--resume", code=2)
    assert "holds no study 'sweep-llm-chat-tpe:composite'" in nothing.output
    assert "run once without --resume" in nothing.output
    search(*args)
    again = run(*args, code=2)
    assert "already holds study" in again.output and "give --resume" in again.output
    other_seed = run(*args, "--resume", "--seed", "9", code=2)
    assert "was made with other seed" in other_seed.output


def test_without_optuna_the_search_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    result = run("--search", "tpe", "--trials", "2", code=2)
    assert "--search needs Optuna: pip install 'elastic-autoscaler[optuna]'" in result.output


def test_ctrl_c_during_a_search_stops_the_workers_and_exits_130(tmp_path):
    started = time.monotonic()
    done = interrupt(tmp_path, "sweep", LLM, "--search", "nsga2", "--trials", "4",
                     "--batch", "2", "--workers", "2")  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in done.stderr + done.stdout
    assert time.monotonic() - started < 60  # the workers' 120 s waits were cut short


def test_short_names_keep_only_what_tells_knobs_apart():
    names = short_names(["policy.policies.0.max_utilization", "min", "a.window", "b.window"])
    assert names == {
        "policy.policies.0.max_utilization": "max_utilization",
        "min": "min",
        "a.window": "a.window",
        "b.window": "b.window",
    }
