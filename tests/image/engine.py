"""Running the controller image with podman, the way the tests (and CI machines) can.

On these machines podman's default runtime (crun) refuses the hybrid cgroups and raising
rlimits is not permitted: every command here passes ``--runtime runc`` (when runc is
installed) and every container gets lowered ulimits. ``image_ref()`` finds the image for
the current sources (scripts/build-image.sh --print-ref; ``make image`` builds it), and
``prerequisite()`` turns what is missing into a skip outside CI and a failure with CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cluster.session import in_ci

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-image.sh"
BUILD_HINT = (
    "`make image` (as root) installs podman, buildah, runc and debootstrap where missing "
    "(scripts/install-podman.sh) and builds the image (scripts/build-image.sh, a no-op when "
    "its inputs are unchanged)"
)
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


class ImageUnavailable(Exception):
    """podman, or the image for the current sources, is not there."""


def podman_binary() -> str:
    found = shutil.which("podman")
    if not found:
        raise ImageUnavailable(f"podman is not installed; {BUILD_HINT}")
    return found


def podman(*args: str, timeout: float = 120, check: bool = False,
           ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`podman [--runtime runc] ARGS`, output captured as text."""
    runc = shutil.which("runc")
    runtime = ["--runtime", runc] if runc else []
    done = subprocess.run(
        [podman_binary(), *runtime, *args], capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


def image_ref() -> str:
    """The image for the current sources; ImageUnavailable when it is not built.
    AUTOSCALER_TEST_IMAGE names another image to test instead."""
    podman_binary()
    override = os.environ.get("AUTOSCALER_TEST_IMAGE", "").strip()
    if override:
        if podman("image", "exists", override).returncode != 0:
            raise ImageUnavailable(f"AUTOSCALER_TEST_IMAGE={override} is not in podman's storage")
        return override
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-ref"], capture_output=True, text=True, timeout=120
    )
    if done.returncode == 3:
        raise ImageUnavailable(f"the image's base is not built; {BUILD_HINT}")
    if done.returncode != 0:
        raise AssertionError(f"{BUILD_SCRIPT} --print-ref failed:\n{done.stderr}")
    ref = done.stdout.strip()
    if podman("image", "exists", ref).returncode != 0:
        raise ImageUnavailable(
            f"the image for the current sources ({ref}) is not built, or the sources changed "
            f"since; {BUILD_HINT}"
        )
    return ref


def prerequisite(problem: ImageUnavailable) -> None:
    """Skip (fail under CI=true: `make test` builds the image first)."""
    if in_ci():
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    pytest.skip(str(problem))


def run(image: str, *args: str, options: tuple[str, ...] = (), timeout: float = 120,
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`podman run --rm` of the image: no network, read-only root, /tmp a tmpfs (a pod's
    emptyDir), all capabilities dropped; `args` after the image (the entry point's)."""
    return podman(
        "run", "--rm", "--network=none", *ULIMITS, *hardened(), *options, image, *args,
        timeout=timeout,
    )  # fmt: skip


def hardened() -> list[str]:
    """The chart's securityContext, as podman options: read-only root filesystem with only
    /tmp writable (its emptyDir), no capabilities, no privilege escalation. The user is the
    image's own (USER 65532:65532), as runAsUser in the chart says."""
    return [
        "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m,mode=1777",
        "--cap-drop=ALL", "--security-opt", "no-new-privileges",
    ]  # fmt: skip
