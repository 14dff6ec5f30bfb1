"""Benchmark: the controller image (make image; scripts/build-image.sh, tests/image).

1. Cold build: every cache empty — a fresh XDG_CACHE_HOME (so debootstrap of the Debian base,
   the dependency wheels' download) and a fresh podman storage (so no layer is cached).
   That storage and cache are removed afterwards.
2. Rebuild after a source change: `--force` with the usual caches (base, wheels and the
   dependency layers cached; the project's wheel, its layer and the runtime venv layer made
   again).
3. Cached build: `make image` when the inputs are unchanged (the hash of the inputs names
   an image that exists): the median of 3.
4. Size: the image, its base, and the difference (/opt/venv).
5. `helm install` -> the container holding the Lease: tests/image/test_controller_container.py
   (the chart installed into the test cluster, the image run as the chart's pod), which
   writes the figure to AUTOSCALER_IMAGE_FIGURES.

Needs podman etc. (`make image-tools`) and, for 5, the test-cluster binaries
(`make cluster-build`). Writes bench/results/image.json (rendered into the README by
bench/readme.py).

    python bench/image.py [--no-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build-image.sh"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "elastic-autoscaler"


def build(*args: str, env: dict[str, str] | None = None) -> float:
    """Run scripts/build-image.sh; its wall time in seconds (a failure ends the bench)."""
    t = time.monotonic()
    done = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True)
    took = time.monotonic() - t
    if done.returncode != 0:
        sys.exit(f"build-image.sh {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return took


def last_build(cache: Path) -> dict[str, str]:
    text = (cache / "image" / "last-build.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def cold_build() -> dict[str, Any]:
    """A build with an empty cache and an empty podman storage, both removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ea-image-cold-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        conf = root / "storage.conf"
        conf.write_text(
            '[storage]\ndriver = "overlay"\n'
            f'graphroot = "{root / "graph"}"\nrunroot = "{root / "run"}"\n'
        )
        env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache"),
               "CONTAINERS_STORAGE_CONF": str(conf)}  # fmt: skip
        try:
            seconds = build(env=env)
            figures = last_build(root / "cache" / "elastic-autoscaler")
            [base] = (root / "cache" / "elastic-autoscaler" / "image").glob("base-*/.complete")
            base_info = dict(line.split("=", 1) for line in base.read_text().splitlines())
        finally:
            subprocess.run(["podman", "rmi", "--all", "--force"], env=env, capture_output=True)
            with open("/proc/mounts") as mounts:  # overlay may mount inside its graphroot
                inside = [line.split()[1] for line in mounts if line.split()[1].startswith(tmp)]
            for mount in sorted(inside, reverse=True):
                subprocess.run(["umount", mount], capture_output=True)
        return {"seconds": seconds, "debootstrap_seconds": float(base_info["seconds"]),
                "size_bytes": int(figures["size_bytes"])}  # fmt: skip


def helm_to_lease() -> float | None:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "AUTOSCALER_IMAGE_FIGURES": out.name}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/image/test_controller_container.py"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        text = Path(out.name).read_text()
    if done.returncode != 0 or not text:
        print(f"the container test did not pass or was skipped:\n{done.stdout[-3000:]}")
        return None
    return float(json.loads(text)["helm_install_to_lease_s"])


def mb(n: int | str) -> str:
    return f"{int(n) / 1e6:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build (minutes)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "image.json"))
    args = parser.parse_args()
    if not shutil.which("podman"):
        sys.exit("podman is not installed: make image-tools")

    rows: list[dict[str, str]] = []
    previous = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
    cold = None if args.no_cold else cold_build()
    if cold is None and previous.get("cold"):
        cold = previous["cold"]  # --no-cold keeps the last cold figure
    rebuild = build("--force")
    cached = statistics.median(build() for _ in range(3))
    figures = last_build(CACHE)
    size, base = int(figures["size_bytes"]), int(figures["base_size_bytes"])
    lease = helm_to_lease()

    rows.append({"measure": "image size", "value": mb(size),
                 "notes": f"base {mb(base)} (debootstrap minbase + python3, venv, "
                          f"ca-certificates); /opt/venv {mb(size - base)}"})  # fmt: skip
    if cold is not None:
        rows.append({"measure": "cold build, every cache empty",
                     "value": f"{cold['seconds']:.0f} s",
                     "notes": f"debootstrap of the base {cold['debootstrap_seconds']:.0f} s; "
                              "dependency wheels downloaded; no layer cached"})  # fmt: skip
    rows.append({"measure": "rebuild after a source change", "value": f"{rebuild:.0f} s",
                 "notes": "base, wheels and dependency layers cached"})
    rows.append({"measure": "cached build (`make image`, inputs unchanged)",
                 "value": f"{cached:.1f} s",
                 "notes": "hash of the inputs; median of 3"})  # fmt: skip
    if lease is not None:
        rows.append({"measure": "`helm install` -> container holds the Lease",
                     "value": f"{lease:.1f} s",
                     "notes": "tests/image/test_controller_container.py; includes helm "
                              "install and the container's start"})  # fmt: skip

    result = {
        "title": "Controller image (podman, runc; "
                 f"{os.cpu_count()} cores, {platform.machine()})",
        "command": "python bench/image.py",
        "rows": rows,
        "image": figures.get("ref", ""),
        "size_bytes": size,
        "base_size_bytes": base,
        "cold": cold,
        "rebuild_s": round(rebuild, 1),
        "cached_build_s": round(cached, 2),
        "helm_install_to_lease_s": lease,
    }  # fmt: skip
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(f"{row['measure']:48} {row['value']:>10}  {row['notes']}")
    print(f"wrote {Path(args.json).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
