"""`autoscaler explain --trigger` and `autoscaler simulate --trigger-series`: what would
fire and why, and when triggers would have fired over a recorded series."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscaler.cli import cli
from autoscaler.config import load_config
from autoscaler.sim.triggers import SeriesError, read_series, replay

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "triggers.yaml")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_explain_says_a_held_breach_fires_with_its_numbers():
    result = invoke("explain", EXAMPLE, "--trigger", "model-quality", "--trigger-value", "0.84",
                    "--held", "15m", "-o", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert verdict["fire"] is True and verdict["state"] == "firing"
    assert verdict["threshold"] == 0.9 and verdict["held_seconds"] == 900.0
    assert verdict["for_seconds"] == 600.0 and verdict["cooldown_left_seconds"] == 0.0


def test_explain_shows_the_cooldown_left_and_the_table():
    result = invoke("explain", EXAMPLE, "--trigger", "model-quality", "--trigger-value", "0.84",
                    "--held", "15m", "--since-last-run", "2h")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cooldown" in result.output and "14400s" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trigger", "nope", "--trigger-value", "1"], "no trigger named 'nope'"),
        (["--trigger", "model-quality"], "--trigger-value"),
        ([], "give --replicas N"),
    ],
)
def test_explain_mistakes_exit_2_with_one_line(args, message):
    result = CliRunner().invoke(cli, ["explain", EXAMPLE, *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def series(tmp_path: Path, rows: list[tuple[float, float]], header: bool = True) -> str:
    path = tmp_path / "accuracy.csv"
    lines = (["time,value"] if header else []) + [f"{t:g},{v:g}" for t, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def drop_series() -> list[tuple[float, float]]:
    """0.95, then 0.85 from 1h to 3h, back, then 0.80 from 4h to 5h (one row a minute)."""
    rows = []
    for t in range(0, 6 * 3600, 60):
        value = 0.85 if 3600 <= t < 3 * 3600 else 0.80 if 4 * 3600 <= t < 5 * 3600 else 0.95
        rows.append((float(t), value))
    return rows


def test_replay_fires_after_for_and_respects_the_cooldown():
    config = load_config(EXAMPLE)
    quality = config.triggers[0]
    firings = replay(quality, drop_series())
    assert [f.at for f in firings] == [3600 + 600]  # the 2nd drop is inside the 6 h cooldown
    shorter = quality.model_copy(update={"cooldown": 1800.0})
    # a run of 30 min, then a 30 min cooldown: the first breach (still held) fires again
    assert [f.at for f in replay(shorter, drop_series(), run_seconds=1800)] == [
        4200.0, 4200.0 + 3600, 4 * 3600 + 600,
    ]  # fmt: skip


def test_simulate_prints_the_firings_and_writes_json(tmp_path):
    path = series(tmp_path, drop_series())
    out = tmp_path / "firings.json"
    result = invoke("simulate", EXAMPLE, "--trigger-series", path, "--trigger", "model-quality",
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "model-quality" in result.output and "4200s" in result.output
    data = json.loads(out.read_text())
    assert data["rows"] == 360 and [f["at"] for f in data["firings"]] == [4200.0]
    as_json = json.loads(invoke("simulate", EXAMPLE, "--trigger-series", path, "-o",
                                "json").output)  # fmt: skip
    assert as_json["firings"] == data["firings"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,value\n10,0.9\n5,0.8\n", "time goes backwards"),
        ("time,value\n10,abc\n", ":2: '10','abc' is not `time,value`"),
        ("time,value\n", "no `time,value` rows"),
        ("10\n", "expected `time,value`"),
    ],
)
def test_bad_series_exit_2_naming_the_line(tmp_path, text, message):
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(SeriesError, match=message.replace("(", r"\(").replace("`", "`")):
        read_series(str(path))
    result = CliRunner().invoke(cli, ["simulate", EXAMPLE, "--trigger-series", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--trigger-series" in result.output


def test_series_times_may_be_rfc3339(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("2026-12-03T10:00:00Z,0.9\n2026-12-03T10:01:00Z,0.8\n")
    assert read_series(str(path)) == [(0.0, 0.9), (60.0, 0.8)]
