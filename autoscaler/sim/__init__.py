"""The simulator: trace readers, a simulated cluster, the production controller ticking on
a fake clock against it, the HPA/KEDA/Knative baselines, the oracle, sweeps and reports.

It runs the same decide and plan code as production; nothing in the policies or the planner
knows it is simulated. This package must never import the process loop, a cloud or cluster
client, or a real provider.
"""
