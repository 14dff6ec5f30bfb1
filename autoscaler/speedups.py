"""Which hot modules run compiled, and the way back to their pure-Python source.

setup.py compiles a few modules with Cython from their own .py source (C types come from
the .pxd beside each): the `queueing` policy's decider and Erlang sizing, and the simulated
cluster, its event loop and its signal source. Python imports a compiled module in
preference to its source, so:

- AUTOSCALER_PURE_PYTHON=1 imports the sources instead (to compare, debug or profile);
- in a source checkout, a compiled module older than its .py or .pxd (edited since the last
  build; `make install` rebuilds) is not used: the sources are imported, with a warning,
  so an edit is never silently ignored.

Either way it is all of them or none: the compiled simulator modules share C types.
`autoscaler --version` lists which is in use.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

COMPILED = (
    "policies.erlang",
    "policies.queueing_policy",
    "autoscaler.sim.adapters",
    "autoscaler.sim.cluster",
    "autoscaler.sim.fast_loop",
)
"""Modules setup.py compiles (the same list is there)."""

ROOT = Path(__file__).resolve().parents[1]
"""Where the `autoscaler` and `policies` packages are (a checkout or site-packages)."""

_why_pure = ""


def _source(root: Path, name: str) -> Path:
    return root / (name.replace(".", "/") + ".py")


def compiled_file(root: Path, name: str) -> Path | None:
    source = _source(root, name)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(source.stem + suffix)
        if candidate.exists():
            return candidate
    return None


def stale(root: Path, names: Sequence[str]) -> list[str]:
    """Modules whose compiled file is older than their source. Only where the .pxd is
    there too, as in a checkout: an installed wheel has no .pxd, and its files' times say
    nothing about which was built from which."""
    found = []
    for name in names:
        built = compiled_file(root, name)
        source = _source(root, name)
        types = source.with_suffix(".pxd")
        if built is None or not types.exists():
            continue
        if max(source.stat().st_mtime, types.stat().st_mtime) > built.stat().st_mtime:
            found.append(name)
    return found


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' .py sources, ahead of the compiled files."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(ROOT, fullname))


def choose() -> None:
    """Called once, when `autoscaler` is imported (before any compiled module can be)."""
    global _why_pure
    if any(isinstance(f, _Sources) for f in sys.meta_path):
        return
    if os.environ.get("AUTOSCALER_PURE_PYTHON") == "1":
        _why_pure = "AUTOSCALER_PURE_PYTHON=1"
    elif old := stale(ROOT, COMPILED):
        _why_pure = f"compiled {', '.join(old)} older than the source; run `make install`"
        warnings.warn(f"autoscaler: pure Python: {_why_pure}", RuntimeWarning, stacklevel=2)
    if _why_pure:
        sys.meta_path.insert(0, _Sources())


def status() -> dict[str, str]:
    """Each compiled module: "compiled", or "pure Python" and why."""
    out = {}
    for name in COMPILED:
        module = importlib.import_module(name)
        origin = getattr(module, "__file__", "") or ""
        if origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            out[name] = "compiled"
        elif _why_pure:
            out[name] = f"pure Python ({_why_pure})"
        else:
            out[name] = "pure Python (not built: no Cython or C compiler at install)"
    return out


def all_compiled() -> bool:
    return all(v == "compiled" for v in status().values())

