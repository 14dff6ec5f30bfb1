"""Benchmark: kill -9 chaos. `autoscaler run` killed over and over against real servers, then
left to converge; what the servers hold afterwards is audited.

Scenarios (tests/chaos/scenarios.py; tests/chaos runs each with 8 cycles):
- ec2: an `ec2` pool (CreateFleet) sized by an SQS backlog, moto server with every EC2 and
  SQS answer delayed (half before moto carries the call out, half before the answer), one
  process at a time with a state file;
- deployment: a `deployment` pool on the real API server, its traffic through a delaying
  TCP proxy, one process at a time with a state file;
- leader: the ec2 pool with two replicas electing a leader on a real Lease; each cycle kills
  the leader and starts a new standby; the other takes over.

Each cycle draws a desired count (0..6, seeded), starts the process, kills it (SIGKILL) a
random fraction of a tick to four ticks after its first call (1 s tick). Counted: launches
(instances launched; replicas added for the Deployment), doubles (launched past what the
acting process wanted, or any action by a standby), orphans (created and neither counted by
the pool nor gone, or without our tags), convergence (the last run holds exactly the desired
count for two ticks, then exits 0 on SIGTERM).

    python bench/chaos.py [--cycles 60] [--scenarios ec2,deployment,leader] [--seed 19]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from tests.aws.helpers import use_dummy_credentials  # noqa: E402
from tests.chaos.delays import ChaosMotoServer  # noqa: E402
from tests.chaos.driver import ChaosResult, Scenario, run_chaos  # noqa: E402
from tests.chaos.scenarios import DeploymentChaos, Ec2Chaos, LeaderChaos  # noqa: E402

SCENARIOS = ("ec2", "deployment", "leader")
COLUMNS = [
    ("scenario", 10),
    ("cycles", 6),
    ("mid-call", 8),
    ("launches", 8),
    ("doubles", 7),
    ("orphans", 7),
    ("converged", 9),
    ("wall s", 7),
]


class Cluster:
    """The test cluster (KUBECONFIG's, or a local one from the built binaries), opened on
    first use, with one fresh namespace per scenario."""

    def __init__(self) -> None:
        self.cluster: Any = None
        self.api: Any = None

    def namespace(self) -> tuple[Any, Path, str]:
        from kubernetes import client as k

        from tests.cluster.session import open_cluster

        if self.cluster is None:
            self.cluster = open_cluster()
            self.api = self.cluster.api_client()
        name = f"chaos-{uuid.uuid4().hex[:8]}"
        k.CoreV1Api(self.api).create_namespace({"metadata": {"name": name}})
        return self.api, self.cluster.kubeconfig, name

    def drop(self, name: str) -> None:
        from kubernetes import client as k

        k.CoreV1Api(self.api).delete_namespace(name)

    def close(self) -> None:
        if self.api is not None:
            self.api.close()
        if self.cluster is not None and self.cluster.local is not None:
            self.cluster.local.stop()


def run(name: str, args: argparse.Namespace, server: ChaosMotoServer, cluster: Cluster,
        workdir: Path) -> ChaosResult:  # fmt: skip
    namespace = None
    scenario: Scenario
    delay, tokens = args.delay, args.client_tokens
    if name == "ec2":
        scenario = Ec2Chaos(server, workdir, delay=delay, client_tokens=tokens)
    else:
        api, kubeconfig, namespace = cluster.namespace()
        if name == "deployment":
            scenario = DeploymentChaos(workdir, kube_api=api, kubeconfig=kubeconfig,
                                       namespace=namespace, delay=delay)  # fmt: skip
        else:
            scenario = LeaderChaos(server, workdir, kube_api=api, kubeconfig=kubeconfig,
                                   namespace=namespace, delay=delay,
                                   client_tokens=tokens)  # fmt: skip
    try:
        return run_chaos(scenario, args.cycles, args.seed)
    finally:
        if namespace is not None:
            cluster.drop(namespace)


def row(r: ChaosResult) -> list[Any]:
    return [r.scenario, r.cycles, r.kills_mid_call, r.launches, r.doubles, r.orphans,
            "yes" if r.converged else "NO", f"{r.wall_s:.0f}"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=60, help="kill -9 cycles per scenario")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--delay", type=float, default=0.4, help="seconds added to each call")
    parser.add_argument(
        "--client-tokens",
        action="store_true",
        help="moto honours EC2's ClientToken (a repeated token: the first answer again, or "
        "IdempotentParameterMismatch with other parameters)",
    )
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "chaos.json"))
    args = parser.parse_args()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")

    results: list[ChaosResult] = []
    cluster = Cluster()
    server = ChaosMotoServer()
    with pytest.MonkeyPatch.context() as env, tempfile.TemporaryDirectory() as tmp:
        use_dummy_credentials(env, os.devnull)
        server.start()
        env.setenv("AWS_ENDPOINT_URL", server.url)
        try:
            for name in names:
                workdir = Path(tmp) / name
                workdir.mkdir()
                result = run(name, args, server, cluster, workdir)
                results.append(result)
                print(result.report(), flush=True)
        finally:
            server.stop()
            cluster.close()

    print()
    print(" ".join(f"{h:>{w}}" for h, w in COLUMNS))
    for r in results:
        print(" ".join(f"{c!s:>{w}}" for c, (_, w) in zip(row(r), COLUMNS, strict=True)))
    document = {
        "title": f"kill -9 chaos: {args.cycles} cycles per scenario, answers delayed "
        f"{args.delay} s",
        "command": f"python bench/chaos.py --cycles {args.cycles}"
        + (" --client-tokens" if args.client_tokens else ""),
        "client_tokens": args.client_tokens,
        # Not `rows`: bench/readme.py renders those into the README's generated tables.
        "columns": [h for h, _ in COLUMNS],
        "table": [row(r) for r in results],
        "results": [r.to_dict() for r in results],
        "all_ok": all(r.ok for r in results),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.json}")
    if not document["all_ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
