"""The EndpointSlices of one Service, watched, with a callback on every change.

Why: the activator forwards a held request the moment a replica turns ready, so it cannot
wait for a poll; the informer (kube_informer) already lists once and follows the watch, and
this adds only the notification, called from the watch thread after each list and each
event (the caller hands it to its own loop). The API is reached through `kube`, the one
module that imports the Kubernetes client.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from autoscaler.clients import kube
from autoscaler.clients.kube_informer import WATCH_SECONDS, Informer

SERVICE_LABEL = "kubernetes.io/service-name"


def slice_lister(api_client: Any) -> Callable[..., Any]:
    """`DiscoveryV1Api.list_namespaced_endpoint_slice` of a connected ApiClient."""
    api = kube.k.DiscoveryV1Api(api_client)  # type: ignore[attr-defined]
    return api.list_namespaced_endpoint_slice  # type: ignore[no-any-return]


class ServiceSlices(Informer):
    """LIST then WATCH the EndpointSlices of Service `service`; `on_change(slices)` gets
    every slice (as `Raw`) after each change, from the watch thread."""

    def __init__(
        self,
        list_call: Callable[..., Any],
        namespace: str,
        service: str,
        on_change: Callable[[list[Any]], None],
        *,
        watch_seconds: int = WATCH_SECONDS,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        selected = functools.partial(list_call, label_selector=f"{SERVICE_LABEL}={service}")
        super().__init__(
            selected, namespace, f"EndpointSlices of Service {namespace}/{service}",
            watch_seconds=watch_seconds, backoff=backoff,
        )  # fmt: skip
        self._on_change = on_change

    @property
    def listed(self) -> bool:
        """Whether the first list has succeeded."""
        return self.lists > 0

    def _list(self) -> None:
        super()._list()
        self._changed()

    def _apply(self, event: dict[str, Any]) -> None:
        super()._apply(event)
        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
            self._changed()

    def _changed(self) -> None:
        with self._lock:
            slices = list(self._items.values())
        self._on_change(slices)
