"""Evaluation triggers: a condition on a signal, held for a time, starts an idempotent run of
Kubernetes Jobs (evaluate -> retrain if the evaluation says so -> optional rollout).

`condition` (pure: breach, hysteresis, `for`, cooldown) and `pipeline` (pure: the next step
of a run from what the cluster shows) decide; `store` (the runs' Jobs), `rollout` (the
serving Deployment) and `objects` (AutoscalingTrigger status and Events) do the I/O;
`chore` ties them into one step per process round. A run's whole progress lives in the
cluster (its Jobs' labels and annotations), so a restarted or newly elected controller
carries on without starting anything twice.

This package must never import the process loop, the controller, the planner or the CLI.
"""
