"""`autoscaler activator [CONFIG] [--crd-pools]`: run the request activator in front of
the pools.

Kept apart from cli.py so the proxy's imports (aiohttp, ijson) load only for this command.
Here, and only here, the activator meets the pool sources of `autoscaler run` (the file's
pools, AutoscalingPool objects through autoscaler.kube): the activator package itself
knows neither, only something whose `load()` gives the pools now. Bad input (the config,
an address, a port in use, missing Kubernetes credentials, flags that do not go together)
exits 2 with one line naming what and where, never a traceback; SIGTERM or SIGINT drain
and exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from .cli_options import config_errors, fail, seconds
from .config import ConfigError
from .config.file_settings import FileSettings
from .pool_sources import FilePools, PoolSource

log = logging.getLogger("autoscaler.activator")


def address(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    """HOST:PORT ([::1]:8080 for IPv6; :8080 for every interface) as (host, port)."""
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r}: write HOST:PORT, e.g. 0.0.0.0:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host and not value.startswith("["):
        raise click.BadParameter(f"{value!r}: write an IPv6 host in brackets, e.g. [::]:8080")
    return host or "0.0.0.0", int(port)


@click.command("activator")
@click.argument("config_path", metavar="[CONFIG]", required=False,
                type=click.Path(dir_okay=False))  # fmt: skip
@click.option("--crd-pools", is_flag=True,
              help="front the AutoscalingPool objects with an `activator` section too")  # fmt: skip
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="read AutoscalingPools in this namespace (repeat; default: the pod's "
              "namespace)")  # fmt: skip
@click.option("--reload-seconds", default="10", show_default=True, callback=seconds,
              help="read the pools again this often: objects come, change and go")  # fmt: skip
@click.option("--listen", default="0.0.0.0:8080", show_default=True, callback=address,
              help="proxy address: the clients' requests")  # fmt: skip
@click.option("--admin", default="0.0.0.0:9091", show_default=True, callback=address,
              help="admin address: stats, wake, /metrics, /healthz, /readyz")  # fmt: skip
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="reach the cluster with this kubeconfig (default: in-cluster, else "
              "KUBECONFIG); needed for `backend.service` and --crd-pools")  # fmt: skip
@click.option("--drain-seconds", default="30", show_default=True, callback=seconds,
              help="on SIGTERM, how long forwarded requests may take to finish")  # fmt: skip
@click.option("--json-logs", is_flag=True, help="structured JSON log lines")
def activator_cmd(
    config_path: str | None,
    crd_pools: bool,
    namespaces: tuple[str, ...],
    reload_seconds: float,
    listen: tuple[str, int],
    admin: tuple[str, int],
    kubeconfig: str | None,
    drain_seconds: float,
    json_logs: bool,
) -> None:
    """Front the pools of CONFIG (and with --crd-pools of the AutoscalingPool objects) that
    have an `activator` section: route each request to its pool, forward it to a ready
    endpoint, and hold it while the pool has none (scale from zero) until the controller
    has woken it. The pools are read again every --reload-seconds."""
    from .activator import Activator, NoActivatorPools
    from .clients.kube import NoCredentials
    from .config.file_settings import load_settings
    from .logs import setup_logging

    if config_path is None and not crd_pools:
        fail("activator: give a configuration file (CONFIG), or --crd-pools, or both")
    if namespaces and not crd_pools:
        fail("activator: --namespace chooses where AutoscalingPools are read; add --crd-pools")
    try:
        settings = load_settings(config_path, pools_optional=crd_pools)
    except ConfigError as exc:
        config_errors(exc)
        sys.exit(2)
    try:
        source, list_slices = pool_source(settings, crd_pools, namespaces, kubeconfig)
        # With objects, the pools are loaded at start; the file alone must front one now.
        first = None if crd_pools else source.load()
        activator = Activator(
            first.config if first is not None else None, kubeconfig=kubeconfig,
            list_slices=list_slices, drain_seconds=drain_seconds, source=source,
            reload_seconds=reload_seconds, serve_empty=crd_pools,
        )  # fmt: skip
    except NoCredentials as exc:
        fail(str(exc))
    except NoActivatorPools as exc:
        fail(f"{config_path}: {exc}")
    setup_logging(json_logs)

    async def run() -> None:
        try:
            await activator.start(listen[0], listen[1], admin[0], admin[1])
        except NoCredentials as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot listen: {exc.strerror or exc}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        fronting = ", ".join(activator.pools) or "no pool yet (none has an `activator` section)"
        log.info("activator: proxy on %s, admin on %s, fronting %s", _shown(listen),
                 _shown(admin), fronting)  # fmt: skip
        await stop.wait()
        log.info("activator: stopping (draining for up to %gs)", drain_seconds)
        await activator.stop()

    asyncio.run(run())


def pool_source(
    settings: FileSettings, crd_pools: bool, namespaces: Sequence[str], kubeconfig: str | None
) -> tuple[PoolSource, Callable[..., Any] | None]:
    """Where the pools come from, as for `autoscaler run`: the file's, plus with `crd_pools`
    every valid AutoscalingPool object in `namespaces` (default: the pod's own); and, then,
    the EndpointSlice lister on the same connection (None: the activator connects when a
    pool needs it). NoCredentials when the cluster cannot be reached."""
    if not crd_pools:
        return FilePools(settings), None
    from .clients.kube import connect, own_namespace
    from .clients.kube_endpoints import slice_lister
    from .kube.pools import CrdPools, PoolLister

    api_client = connect(kubeconfig)
    lister = PoolLister(api_client, list(namespaces) or [own_namespace()])
    return CrdPools(lister, settings), slice_lister(api_client)


def _shown(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
