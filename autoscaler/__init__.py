"""Elastic autoscaler for AI workloads."""
