"""One in-memory Kubernetes API for unit tests: objects, lists, watches and errors as the API
server gives them, through the client's own method names.

    kube = FakeKube()
    kube.add(k.V1Pod(metadata=k.V1ObjectMeta(name="a", namespace="llm"), ...))
    source = KubePendingSource(core=kube.core, batch=kube.batch)

`kube.core`, `.apps`, `.batch`, `.custom` and `.coordination` stand for CoreV1Api,
AppsV1Api, BatchV1Api, CustomObjectsApi and CoordinationV1Api. Each offers only the methods
its real class has and answers them from one store, so a write through one is seen by a list
through another. What the server does that a caller can tell, the fake does:

- objects are kept as JSON; calls return the client's models, or with
  `_preload_content=False` the raw body (`.data`); custom objects come back as dicts;
- lists filter by `label_selector` (=, ==, !=, in, notin, key, !key) and `field_selector`
  (=, ==, != on a dotted path such as status.phase), page with `limit` / `_continue`, and
  carry the list's resourceVersion;
- a watch (`watch=True`, raw) sends the events after `resource_version` as newline-delimited
  JSON split across chunks, then live ones until `timeout_seconds` or `end_watches()`; a
  version older than the last `compact()` gets the 410 ERROR event, and `expire_watches()`
  sends it to the open ones;
- writes set resourceVersion, uid, creationTimestamp and generation (bumped when the spec
  changes); patches are JSON merge patches (null removes a key); the `_status` and `_scale`
  subresources and evictions work; an object the client's model refuses is 422, a missing
  one 404, an existing one on create and a stale resourceVersion on replace 409: all
  `ApiException`s with status, reason and a Status body, as the client raises them
  (`api_error` builds one for tests);
- `inject` adds faults: an error, a delay (on the fake's clock), a hold until an event is set.

Every call is recorded in `calls` (method, args, kwargs), for tests that count API calls.
What the server does to the JSON itself (merge patches, selectors...) is in kube_objects.py.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k

from autoscaler.clock import Clock, SystemClock
from tests.fakes.kube_objects import (
    BUILTIN,
    Kind,
    WatchResponse,
    api_error,
    check_version,
    gone,
    kept,
    merge_patch,
    rfc3339,
    scale_of,
    selected,
)

HOLD_LIMIT = 10.0
"""A held call goes on after this many seconds even if never released (no test hangs)."""


_BY_MODEL = {kind.model: kind for kind in BUILTIN.values()}

_BUILTIN_CALL = re.compile(
    r"(list|read|create|patch|replace|delete)_(namespaced_)?([a-z_]+?)"
    r"(_for_all_namespaces)?(?:_(status|scale|eviction))?"
)
_CUSTOM_CALL = re.compile(
    r"(list|get|create|patch|replace|delete)_(namespaced|cluster)_custom_object(_status)?"
)


@dataclass(frozen=True)
class Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Fault:
    """What `inject` adds: on calls to `method` ("*": any), optionally only those naming
    object `name` or only watches (`watch`), for `times` calls (None: until cleared)."""

    method: str
    error: BaseException | None = None
    delay: float = 0.0
    hold: threading.Event | None = None
    times: int | None = None
    name: str | None = None
    watch: bool | None = None

    def matches(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        if self.method not in ("*", method):
            return False
        if self.watch is not None and bool(kwargs.get("watch")) != self.watch:
            return False
        return self.name is None or self.name in (*args, kwargs.get("name"))


@dataclass
class RawResponse:
    """What a call made with `_preload_content=False` returns: the body, unparsed."""

    data: bytes

    def release_conn(self) -> None:
        pass


class FakeKube:
    """The store, the calls and the faults; `core`, `apps`, ... are the client's views."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.calls: list[Call] = []
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._kinds = {kind.kind: kind for kind in BUILTIN.values()}
        self._version = 0
        self._oldest = 0  # a watch from an older resourceVersion is answered 410 Gone
        self._history: list[tuple[int, Kind, dict[str, Any]]] = []
        self._watches: set[WatchResponse] = set()
        self._faults: list[Fault] = []
        self._closed = False
        self._client = k.ApiClient()
        self.core = _Api(self, k.CoreV1Api)
        self.apps = _Api(self, k.AppsV1Api)
        self.batch = _Api(self, k.BatchV1Api)
        self.custom = _Api(self, k.CustomObjectsApi)
        self.coordination = _Api(self, k.CoordinationV1Api)

    def __enter__(self) -> FakeKube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the test's side -----------------------------------------------------------------
    def add(self, *objects: Any) -> None:
        """Create objects (client models, or dicts with apiVersion and kind) as they are."""
        for obj in objects:
            data = self._json(obj)
            kind = self._kind_of(obj, data)
            with self._lock:
                self._create(kind, data["metadata"].get("namespace") or "", data, seeded=True)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """A copy of a stored object's JSON (KeyError when there is none)."""
        with self._lock:
            return copy.deepcopy(self._objects[(self._kinds[kind].resource, namespace or "", name)])

    def names(self, kind: str, namespace: str | None = None) -> list[str]:
        resource = self._kinds[kind].resource
        with self._lock:
            return sorted(n for (r, ns, n) in self._objects
                          if r == resource and namespace in (None, ns))  # fmt: skip

    def edit(self, kind: str, name: str, patch: Mapping[str, Any], namespace: str | None = None
             ) -> dict[str, Any]:  # fmt: skip
        """Merge-patch an object as another client would (watchers see it modified)."""
        with self._lock:
            return self._patch(self._kinds[kind], namespace or "", name, self._json(patch))

    def remove(self, kind: str, name: str, namespace: str | None = None) -> None:
        with self._lock:
            self._delete(self._kinds[kind], namespace or "", name)

    def inject(self, method: str, **fault: Any) -> Fault:
        """Add a fault (see `Fault`); the first that matches a call applies to it."""
        added = Fault(method, **fault)
        with self._lock:
            self._faults.append(added)
        return added

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def calls_to(self, *methods: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method in methods]

    def compact(self) -> None:
        """Forget the history so far, as etcd compacts: resuming an older watch is 410."""
        with self._lock:
            self._oldest, self._history = self._version, []

    def expire_watches(self) -> None:
        """Compact, and tell every open watch it is too old to go on (the 410 ERROR event),
        as the API server does to a watcher that fell behind."""
        with self._lock:
            self._oldest, self._history = self._version, []
            watches, self._watches = list(self._watches), set()
        for watch in watches:
            watch.put(gone(f"too old resource version (compacted at {self._oldest})"))
            watch.end()

    def end_watches(self) -> None:
        """End every open watch, as the server does at a watch's timeout."""
        with self._lock:
            watches, self._watches = list(self._watches), set()
        for watch in watches:
            watch.end()

    def close(self) -> None:
        """End the watches; later ones end at once (a test's informers can stop)."""
        self._closed = True
        self.end_watches()
        for fault in self._faults:
            if fault.hold is not None:
                fault.hold.set()

    # -- the client's side ---------------------------------------------------------------
    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls.append(Call(method, args, kwargs))
            fault = next((f for f in self._faults if f.matches(method, args, kwargs)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
        if fault is not None:
            self.clock.sleep(fault.delay)
            if fault.hold is not None:
                fault.hold.wait(HOLD_LIMIT)
            if fault.error is not None:
                raise fault.error
        return self._dispatch(method, args, kwargs)

    def _dispatch(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if custom := _CUSTOM_CALL.fullmatch(method):
            verb, scope, sub = custom.group(1), custom.group(2), custom.group(3)
            names = ["group", "version", *(["namespace"] if scope == "namespaced" else []),
                     "plural", *(["name"] if verb not in ("list", "create") else []),
                     *(["body"] if verb in ("create", "patch", "replace") else [])]  # fmt: skip
            p = _bind(names, args, kwargs)
            kind = self._custom_kind(p["group"], p["version"], p["plural"])
            return self._serve(kind, "read" if verb == "get" else verb, sub and "status", p, kwargs)
        builtin = _BUILTIN_CALL.fullmatch(method)
        if builtin is None or builtin.group(3) not in BUILTIN:
            raise NotImplementedError(f"FakeKube does not serve {method}")
        verb, namespaced, resource, _, sub = builtin.groups()
        names = [*(["name"] if verb not in ("list", "create") or sub == "eviction" else []),
                 *(["namespace"] if namespaced else []),
                 *(["body"] if verb in ("create", "patch", "replace") else [])]  # fmt: skip
        return self._serve(BUILTIN[resource], verb, sub, _bind(names, args, kwargs), kwargs)

    def _serve(self, kind: Kind, verb: str, sub: str | None, p: dict[str, Any],
               kwargs: dict[str, Any]) -> Any:  # fmt: skip
        namespace, name = p.get("namespace"), p.get("name")
        if verb == "list":
            if kwargs.get("watch"):
                return self._watch(kind, namespace, kwargs)
            return self._out(kind, self._list(kind, namespace, kwargs), kwargs, "List")
        ns = namespace or ""
        with self._lock:
            if sub == "eviction":
                self._delete(BUILTIN["pod"], ns, str(name))
                return self._out(kind, self._json(p["body"]), kwargs, model="V1Eviction")
            if verb == "read":
                found = self._find(kind, ns, str(name))
            elif verb == "create":
                found = self._create(kind, ns, self._json(p["body"]))
            elif verb == "delete":
                self._delete(kind, ns, str(name))
                status = {"kind": "Status", "apiVersion": "v1", "status": "Success"}
                return self._out(kind, status, kwargs, model="V1Status")
            else:
                body = self._json(p["body"])
                if sub == "scale":
                    body = {"spec": {"replicas": (body.get("spec") or {}).get("replicas")}}
                elif sub == "status":  # the status alone; the rest of the body is ignored
                    version = (body.get("metadata") or {}).get("resourceVersion")
                    body = {"metadata": {"resourceVersion": version},
                            "status": body.get("status") or {}}  # fmt: skip
                if verb == "patch":
                    found = self._patch(kind, ns, str(name), body)
                else:
                    found = self._replace(kind, ns, str(name), body, whole=sub is None)
            if sub == "scale":
                return self._out(kind, scale_of(found), kwargs, model="V1Scale")
            return self._out(kind, copy.deepcopy(found), kwargs)

    # -- the store (under the lock) -------------------------------------------------------
    def _find(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        found = self._objects.get((kind.resource, namespace, name))
        if found is None:
            raise api_error(404, "Not Found", f'{kind.plural} "{name}" not found')
        return found

    def _create(
        self, kind: Kind, namespace: str, data: dict[str, Any], seeded: bool = False
    ) -> dict[str, Any]:
        """A new object; `seeded` (by the test) keeps the uid, time and generation it has."""
        meta = data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise api_error(422, "Unprocessable Entity", "metadata.name: Required value")
        if kind.namespaced:
            meta["namespace"] = namespace
        if (kind.resource, namespace, name) in self._objects:
            raise api_error(409, "Conflict", f'{kind.plural} "{name}" already exists')
        data.setdefault("apiVersion", kind.api_version)
        data.setdefault("kind", kind.kind)
        made = {"uid": str(uuid.uuid4()), "generation": 1,
                "creationTimestamp": rfc3339(self.clock.now())}  # fmt: skip
        meta.update({key: meta.get(key) or value for key, value in made.items()} if seeded
                    else made)  # fmt: skip
        return self._store(kind, data, "ADDED")

    def _patch(self, kind: Kind, namespace: str, name: str, body: dict[str, Any]
               ) -> dict[str, Any]:  # fmt: skip
        old = self._find(kind, namespace, name)
        check_version(kind, old, body)
        new = merge_patch(old, body)
        return self._store(kind, kept(old, new), "MODIFIED")

    def _replace(self, kind: Kind, namespace: str, name: str, body: dict[str, Any], whole: bool
                 ) -> dict[str, Any]:  # fmt: skip
        old = self._find(kind, namespace, name)
        check_version(kind, old, body)
        new = body if whole else {**old, "status": body["status"]}
        return self._store(kind, kept(old, new), "MODIFIED")

    def _delete(self, kind: Kind, namespace: str, name: str) -> None:
        old = self._find(kind, namespace, name)
        self._store(kind, copy.deepcopy(old), "DELETED")

    def _store(self, kind: Kind, data: dict[str, Any], event: str) -> dict[str, Any]:
        if kind.model is not None and event != "DELETED":
            self._validate(kind, data)
        self._version += 1
        data["metadata"]["resourceVersion"] = str(self._version)
        key = (kind.resource, data["metadata"].get("namespace") or "", data["metadata"]["name"])
        if event == "DELETED":
            del self._objects[key]
        else:
            self._objects[key] = data
        happened = {"type": event, "object": copy.deepcopy(data)}
        self._history.append((self._version, kind, happened))
        for watch in list(self._watches):
            watch.offer(kind, happened)
        return data

    def _list(self, kind: Kind, namespace: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            version = self._version
            items = [copy.deepcopy(obj) for (r, ns, _), obj in sorted(self._objects.items())
                     if r == kind.resource and namespace in (None, ns)]  # fmt: skip
        items = [obj for obj in items if selected(obj, kwargs)]
        start = int(kwargs.get("_continue") or 0)
        end = start + (kwargs.get("limit") or len(items))
        meta: dict[str, Any] = {"resourceVersion": str(version)}
        if end < len(items):
            meta["continue"] = str(end)
        return {"apiVersion": kind.api_version, "kind": f"{kind.kind}List", "metadata": meta,
                "items": items[start:end]}  # fmt: skip

    def _watch(self, kind: Kind, namespace: str | None, kwargs: dict[str, Any]) -> WatchResponse:
        if kwargs.get("_preload_content", True):
            raise NotImplementedError("FakeKube serves watches raw (_preload_content=False)")
        version = str(kwargs.get("resource_version") or "")

        def wanted(of: Kind, happened: dict[str, Any]) -> bool:
            obj = happened["object"]
            return (of == kind and namespace in (None, obj["metadata"].get("namespace"))
                    and selected(obj, kwargs))  # fmt: skip

        watch = WatchResponse(wanted, kwargs.get("timeout_seconds"), self._forget)
        with self._lock:
            if self._closed:
                watch.end()
            elif version not in ("", "0") and int(version) < self._oldest:
                watch.put(gone(f"too old resource version: {version} ({self._oldest})"))
                watch.end()
            else:
                if version in ("", "0"):  # "most recent": every object, as ADDED
                    backlog = [(kind, {"type": "ADDED", "object": copy.deepcopy(obj)})
                               for (r, _, _), obj in sorted(self._objects.items())
                               if r == kind.resource]  # fmt: skip
                else:
                    backlog = [(of, e) for v, of, e in self._history if v > int(version)]
                for of, happened in backlog:
                    watch.offer(of, happened)
                self._watches.add(watch)
        return watch

    def _forget(self, watch: WatchResponse) -> None:
        with self._lock:
            self._watches.discard(watch)

    # -- JSON and models -----------------------------------------------------------------
    def _json(self, obj: Any) -> dict[str, Any]:
        data = self._client.sanitize_for_serialization(obj)
        return copy.deepcopy(data) if isinstance(obj, Mapping) else data

    def _out(self, kind: Kind, data: dict[str, Any], kwargs: dict[str, Any], suffix: str = "",
             model: str | None = None) -> Any:  # fmt: skip
        if kwargs.get("_preload_content", True) is False:
            return RawResponse(json.dumps(data).encode())
        name = model or (kind.model and kind.model + suffix)
        if name is None:
            return data  # custom objects: plain dicts, as CustomObjectsApi returns them
        return self._client.deserialize(json.dumps(data), name, None)

    def _validate(self, kind: Kind, data: dict[str, Any]) -> None:
        """Refuse what the client's model refuses (a Deployment without a selector...), as
        the API server would: 422, before anything is stored."""
        try:
            self._client.deserialize(json.dumps(data), str(kind.model), None)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            name = (data.get("metadata") or {}).get("name")
            problem = str(exc).splitlines()[1:3]
            raise api_error(422, "Unprocessable Entity", f"{kind.kind} {name}: {problem}") from None

    def _kind_of(self, obj: Any, data: dict[str, Any]) -> Kind:
        if not isinstance(obj, Mapping):
            return _BY_MODEL[type(obj).__name__]
        name, api_version = data["kind"], data["apiVersion"]
        with self._lock:
            if name not in self._kinds:  # a custom resource: plural as kubectl guesses it
                self._kinds[name] = Kind(name, name.lower() + "s", api_version, None)
            return self._kinds[name]

    def _custom_kind(self, group: str, version: str, plural: str) -> Kind:
        with self._lock:
            for kind in self._kinds.values():
                if kind.model is None and kind.resource == f"{plural}.{group}":
                    return kind
            kind = Kind(plural, plural, f"{group}/{version}", None)
            self._kinds[plural] = kind
            return kind


class _Api:
    """One of the client's API classes, answered by a FakeKube: only the methods the real
    class has (a misspelt call fails here as it would against the real client)."""

    def __init__(self, kube: FakeKube, real: type) -> None:
        self._kube, self._real = kube, real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not callable(getattr(self._real, name, None)):
            raise AttributeError(f"{self._real.__name__} has no method {name!r}")
        return functools.partial(self._kube.call, name)

    def __repr__(self) -> str:
        return f"<fake {self._real.__name__}>"


# -- helpers -------------------------------------------------------------------------------
def _bind(names: list[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = dict(zip(names, args, strict=False))
    bound.update({n: kwargs[n] for n in names[len(args) :] if n in kwargs})
    missing = [n for n in names if n not in bound]
    if missing:
        raise TypeError(f"missing arguments: {', '.join(missing)}")
    return bound
