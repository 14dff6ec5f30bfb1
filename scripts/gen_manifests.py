"""Write the AutoscalingPool CRD, generated from the pydantic models, where the deployment
artifacts need it: the kustomize base and the Helm chart's crds/ folder (which also gets
the AutoscalingTrigger CRD of evaluation triggers).

    python scripts/gen_manifests.py          # rewrite the files
    python scripts/gen_manifests.py --check  # exit 1 (naming the stale files) if out of date

tests/kube/test_manifests.py runs the check, so a change to the models that is not
regenerated fails the tests instead of shipping a CRD that rejects (or lets through) the
wrong pools.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.kube.crd import PLURAL, TRIGGER_PLURAL, crd_yaml, trigger_crd_yaml  # noqa: E402

TARGETS = (
    ROOT / "k8s" / "base" / "crd.yaml",
    ROOT / "helm" / "autoscaler" / "crds" / f"{PLURAL}.yaml",
)
TRIGGER_TARGETS = (ROOT / "helm" / "autoscaler" / "crds" / f"{TRIGGER_PLURAL}.yaml",)
"""Where the AutoscalingTrigger CRD goes (the chart only: docs/triggers.md)."""


def outputs() -> dict[Path, str]:
    """Each generated file and the text it must hold."""
    text, triggers = crd_yaml(), trigger_crd_yaml()
    return {**{path: text for path in TARGETS}, **{path: triggers for path in TRIGGER_TARGETS}}


def stale() -> list[Path]:
    """The generated files that are missing or differ from what the models give now."""
    return [
        path
        for path, text in outputs().items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        old = stale()
        for path in old:
            print(
                f"{path.relative_to(ROOT)} is out of date; run: python scripts/gen_manifests.py",
                file=sys.stderr,
            )
        return 1 if old else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
