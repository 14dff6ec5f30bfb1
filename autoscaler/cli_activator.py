"""`autoscaler activator CONFIG`: run the request activator in front of the pools.

Kept apart from cli.py so the proxy's imports (aiohttp, ijson) load only for this command.
Bad input (the config, an address, a port in use, missing Kubernetes credentials) exits 2
with one line naming what and where, never a traceback; SIGTERM or SIGINT drain and exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from .cli_options import seconds
from .config import ConfigError, load_config

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


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.command("activator")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--listen", default="0.0.0.0:8080", show_default=True, callback=address,
              help="proxy address: the clients' requests")  # fmt: skip
@click.option("--admin", default="0.0.0.0:9091", show_default=True, callback=address,
              help="admin address: stats, wake, /metrics, /healthz, /readyz")  # fmt: skip
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="reach the cluster with this kubeconfig (default: in-cluster, else "
              "KUBECONFIG); needed only for `backend.service`")  # fmt: skip
@click.option("--drain-seconds", default="30", show_default=True, callback=seconds,
              help="on SIGTERM, how long forwarded requests may take to finish")  # fmt: skip
@click.option("--json-logs", is_flag=True, help="structured JSON log lines")
def activator_cmd(
    config_path: str,
    listen: tuple[str, int],
    admin: tuple[str, int],
    kubeconfig: str | None,
    drain_seconds: float,
    json_logs: bool,
) -> None:
    """Front the pools of CONFIG that have an `activator` section: route each request to
    its pool, forward it to a ready endpoint, and hold it while the pool has none (scale
    from zero) until the controller has woken it."""
    from .activator import Activator, NoActivatorPools
    from .clients.kube import NoCredentials
    from .logs import setup_logging

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"{exc.source}: {len(exc.issues)} error(s)", err=True)
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        sys.exit(2)
    try:
        activator = Activator(config, kubeconfig=kubeconfig, drain_seconds=drain_seconds)
    except NoActivatorPools as exc:
        _fail(f"{config_path}: {exc}")
        return
    setup_logging(json_logs)

    async def run() -> None:
        try:
            await activator.start(listen[0], listen[1], admin[0], admin[1])
        except NoCredentials as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"cannot listen: {exc.strerror or exc}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("activator: proxy on %s, admin on %s, fronting %s", _shown(listen),
                 _shown(admin), ", ".join(activator.pools))  # fmt: skip
        await stop.wait()
        log.info("activator: stopping (draining for up to %gs)", drain_seconds)
        await activator.stop()

    asyncio.run(run())


def _shown(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
