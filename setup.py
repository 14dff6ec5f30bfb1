"""Optional compiled speed-ups for the hottest code; the metadata is in pyproject.toml.

Cython compiles a few modules from their own .py source, with C types from the .pxd file
beside each: the `queueing` policy's decider and Erlang sizing, and the simulated cluster,
its event loop and its signal source. The results are bit-identical to the pure-Python
modules (tests/sim/test_compiled.py) and a simulated day runs faster (bench/sim_speed.py).
Nothing requires them: without Cython or a C compiler the build goes on, the .py modules
run, and `autoscaler --version` says so. AUTOSCALER_PURE_PYTHON=1 skips the build (and, at
run time, the compiled modules).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup

COMPILED = [
    "policies.erlang",
    "policies.queueing_policy",
    "autoscaler.sim.adapters",
    "autoscaler.sim.cluster",
    "autoscaler.sim.fast_loop",
]


def extensions() -> list[Extension]:
    if os.environ.get("AUTOSCALER_PURE_PYTHON") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("elastic-autoscaler: Cython missing; installing pure Python", file=sys.stderr)
        return []
    modules = [
        Extension(name, [name.replace(".", "/") + ".py"], optional=True) for name in COMPILED
    ]
    try:
        return cythonize(
            modules,
            build_dir="build/cython",
            quiet=True,
            # C types come from the .pxd files only; the .py annotations are for mypy.
            compiler_directives={"language_level": 3, "annotation_typing": False},
        )
    except Exception as exc:  # a Cython error must not stop the install: pure Python runs
        print(f"elastic-autoscaler: not compiled ({exc}); installing pure Python", file=sys.stderr)
        return []


setup(ext_modules=extensions())
