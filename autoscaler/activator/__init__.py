"""`autoscaler activator`: an HTTP reverse proxy that lets a serving pool scale to zero.

Why: at zero replicas a request has nowhere to go, and the controller only sees demand it
is told about. The activator sits in front of the pools (like Knative's activator or KEDA's
HTTP add-on), routes each request to its pool (Host, path prefix, OpenAI `model`), forwards
it at once when an endpoint is ready and otherwise holds it, in arrival order, until one
is, while its wake channel tells the controller to scale the pool up.

Modules: `routes` (which pool), `bodies` (the `model` read from a streaming body),
`holding` (per-pool queue, endpoint choice, counts), `endpoints` (static URLs and Service
EndpointSlices), `proxy` (forwarding and streaming), `admin` (stats, wake, metrics,
probes), `fronting` (the fronted pools, changed in place), `reload` (reading the pools
again: AutoscalingPool objects come and go) and `server` (`Activator`: start, stop,
in-process use).
"""

from .reload import PoolLoader
from .server import Activator, NoActivatorPools

__all__ = ["Activator", "NoActivatorPools", "PoolLoader"]
