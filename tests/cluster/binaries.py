"""Where the test cluster's binaries live, and a clear error when they are not built.

The versions are pinned once, in ``scripts/k8s/versions.env``; ``scripts/k8s/build.sh`` builds
them into ``${XDG_CACHE_HOME:-~/.cache}/elastic-autoscaler/k8s-<versions>/bin`` and this
module computes the same folder, so the two can never disagree about which build to use.
``AUTOSCALER_K8S_BIN_DIR`` overrides the folder (for binaries built or unpacked elsewhere).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "scripts" / "k8s" / "versions.env"
BUILD_HINT = "make cluster-build   (or: bash scripts/k8s/build.sh; needs Go >= 1.26)"

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
TOOLS = ("kubectl", "helm")
ALL_BINARIES = CONTROL_PLANE + TOOLS


class MissingBinariesError(RuntimeError):
    """The binaries a local cluster needs have not been built (or not all of them)."""


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse the KEY=value lines of versions.env (comments and blank lines ignored)."""
    versions: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not a KEY=value line: {raw!r}")
        versions[key.strip()] = value.strip()
    for key in ("K8S_VERSION", "ETCD_VERSION", "KWOK_VERSION", "HELM_VERSION"):
        if key not in versions:
            raise ValueError(f"{path}: {key} is missing")
    return versions


def cache_dir(versions: dict[str, str] | None = None) -> Path:
    """The versioned cache folder build.sh writes to (the same formula as the script)."""
    v = versions or read_versions()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    name = (
        f"k8s-{v['K8S_VERSION']}-etcd-{v['ETCD_VERSION']}"
        f"-kwok-{v['KWOK_VERSION']}-helm-{v['HELM_VERSION']}"
    )
    return base / "elastic-autoscaler" / name


def bin_dir() -> Path:
    """The folder holding the binaries: AUTOSCALER_K8S_BIN_DIR, else the build cache."""
    override = os.environ.get("AUTOSCALER_K8S_BIN_DIR")
    if override:
        return Path(override).expanduser()
    return cache_dir() / "bin"


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the cluster's executables."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kubectl: Path
    helm: Path

    def path(self, name: str) -> Path:
        return getattr(self, name.replace("-", "_"))


def missing(directory: Path | None = None) -> list[str]:
    """Names of the binaries that are absent or not executable."""
    d = directory or bin_dir()
    return [n for n in ALL_BINARIES if not os.access(d / n, os.X_OK) or not (d / n).is_file()]


def find_binaries(directory: Path | None = None) -> Binaries:
    """Return the binaries, or raise MissingBinariesError saying how to build them."""
    d = directory or bin_dir()
    absent = missing(d)
    if absent:
        raise MissingBinariesError(
            f"test cluster binaries not found in {d}: missing {', '.join(absent)}. "
            f"Build them once with: {BUILD_HINT}"
        )
    return Binaries(**{n.replace("-", "_"): d / n for n in ALL_BINARIES})
