"""Elastic autoscaler for AI workloads."""

from . import speedups as _speedups

# Before anything imports a compiled module: see speedups.py.
_speedups.choose()
