"""Simulations give, bit for bit, what they gave before the simulator was restructured
(issue 14: one event loop, one provider, frozen values, skipped quiet ticks).

Each run has three digests: of its metrics (all but its wall time and the figures at zero
ready replicas), of its whole timeline (every tick's counts, decision and reason), and of
its figures at zero ready replicas (`AT_ZERO_KEYS`: cold starts, requests held, lost,
rejected, timed out; issue 15), recorded with the code as it was before. A change that
moves any decision, reason or metric of these runs fails here; one that means to (a policy
or planner change) records new digests and says why in its commit.

Issue 15 (serving from zero) added the third digest and moved no metric or timeline: none
of these LLM pools loses a request at zero, the KPA's requests at zero are held (Knative's
activator) as they queued before, and the timeline's queue counts held requests. The
composite's timelines moved with examples/llm-serving.yaml, which gained the activator and
a queue-depth guard on `held` (its reasons name it; every count and decision is the same).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from autoscaler.config import Config, load_config
from autoscaler.sim.engine import AT_ZERO_KEYS
from autoscaler.sim.run import simulate

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT.parent / "shared" / "traces"

ORACLE_TIMELINE = "44136fa355b3678a"  # the oracle has none
GOLDEN: dict[str, dict[str, tuple[str, str, str]]] = {
    "simulated": {
        "queueing": ("351c37564ec12388", "2f8cbb80fb564872", "414b8b758a3b7915"),
        "hpa": ("cf5a81b697d441da", "027beca6c43cbe6d", "414b8b758a3b7915"),
        "keda": ("a041452f1424b37c", "a15f038874128cc8", "414b8b758a3b7915"),
        "kpa": ("07d7e65eb3f45ced", "c14442da42f63618", "4af737d6c47f8027"),
        "oracle": ("8bf31067860f361a", ORACLE_TIMELINE, "f6e4180627fa3b36"),
    },
    "simulated-delay": {
        "queueing": ("dbc4c3b9bef311bf", "131be49f250db874", "414b8b758a3b7915"),
        "hpa": ("6e2d6f3e625d1e55", "7d4f84816753b2d0", "414b8b758a3b7915"),
        "keda": ("62bfb81da8ef560f", "ba7f7f837202e369", "414b8b758a3b7915"),
        "kpa": ("74fb60142f027f47", "73341844046ca0c0", "f2e3e90fdefb6296"),
        "oracle": ("8bf31067860f361a", ORACLE_TIMELINE, "f6e4180627fa3b36"),
    },
    "llm-serving": {
        "composite": ("60200be45b1d9c03", "f113a8eb4d85f223", "28c039cb86ae6ebf"),
        "hpa": ("d4f344aae7f7233d", "b30b89e4a978b701", "28c039cb86ae6ebf"),
        "keda": ("c7f186c3cb7c4b09", "b585770180c1f375", "28c039cb86ae6ebf"),
        "kpa": ("debadcd24d2895fa", "022f928c8f5a8144", "28c039cb86ae6ebf"),
        "oracle": ("a2a23e0763489725", ORACLE_TIMELINE, "ddce54eb65871f95"),
    },
    "llm-code-5s": {
        "composite": ("7a47fb5d25cc8fb7", "54764315e332a11e", "28c039cb86ae6ebf"),
        "hpa": ("6391a46c506f03e4", "14ed2b45f09424f0", "28c039cb86ae6ebf"),
        "keda": ("1eaeba052e3dcfe2", "5f7e663319fc6141", "28c039cb86ae6ebf"),
        "kpa": ("7332fa1d04a3915f", "3554a9deff7a37b4", "611065dff33e8a01"),
        "oracle": ("47633d31ec50f73b", ORACLE_TIMELINE, "48585f8876aa30be"),
    },
    "gpu-batch": {"packing": ("9616e35544000d27", "4c022fccf6a65d34", "288f1f26fc88cd7c")},
    "gpu-batch-10s": {"packing": ("c7213582cc0e1b39", "2ddb26b9d1d3cd0e", "2f99e1065b55e26b")},
}


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_delay(config: Config, seconds: float) -> Config:
    pools = [
        p.model_copy(update={"simulation": p.simulation.model_copy(
            update={"signal_delay": seconds})}) if p.simulation else p
        for p in config.pools
    ]  # fmt: skip
    return config.model_copy(update={"pools": pools})


def case(name: str) -> tuple[Config, dict[str, Any]]:
    code = TRACES / "AzureLLMInferenceTrace_code.csv"
    batch = TRACES / "alibaba_gpu_v2023" / "openb_pod_list_default.csv"
    if name.startswith("simulated"):
        config = load_config(ROOT / "examples" / "simulated.yaml")
        return (with_delay(config, 5.0) if name.endswith("delay") else config), {}
    if name == "llm-serving":
        return load_config(ROOT / "examples" / "llm-serving.yaml"), {}
    needed = code if name == "llm-code-5s" else batch
    if not needed.exists():
        pytest.skip(f"needs the shared traces beside the checkout: {needed}")
    if name == "llm-code-5s":
        return load_config(ROOT / "examples" / "llm-serving.yaml"), {
            "trace_path": str(code), "trace_format": "azure-llm", "tick_seconds": 5.0}
    config = load_config(ROOT / "examples" / "gpu-batch.yaml")
    if name == "gpu-batch":
        return config, {"compare": ()}
    return config, {"compare": (), "tick_seconds": 10.0, "speedup": 4.0}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_simulations_decide_exactly_as_before_the_restructuring(name: str) -> None:
    config, options = case(name)
    report = simulate(config, **options)
    got = {
        run.policy: (
            digest(
                {
                    k: v
                    for k, v in run.metrics.items()
                    if k != "wall_seconds" and k not in AT_ZERO_KEYS
                }
            ),
            digest(run.timeline),
            digest({k: run.metrics[k] for k in AT_ZERO_KEYS}),
        )
        for run in report.runs
    }
    assert got == GOLDEN[name]
