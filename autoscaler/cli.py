"""The `autoscaler` command line: the group, `run`, and the commands registered from the
cli_* modules (validate, schema, crd, version, explain, simulate, sweep, activator,
iam-policy).

Every command that prints a result takes `-o table|json|yaml` (autoscaler/cli_output.py):
the result alone on standard output, logs and notes on standard error. Errors a user can
fix exit with status 2 and say what and where; they never print a traceback. Ctrl-C
(SIGINT) anywhere but in `run` (which finishes its tick) prints `interrupted` and exits 130.
"""

from __future__ import annotations

import sys

import click
from rich.console import RenderableType

from .cli_info import installed_version
from .cli_options import config_errors, duration, fail, plain
from .cli_output import (
    chosen_format,
    emit,
    json_flag_alias,
    output_option,
)
from .config import ConfigError
from .config.file_settings import FileSettings

INTERRUPTED = 130
"""Exit status after Ctrl-C: 128 + SIGINT, as shells report it."""


class _Cli(click.Group):
    """The command group; Ctrl-C in any command is one line and exit 130, no traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # On a terminal, after the `^C` it echoed.
            click.echo(("\n" if sys.stderr.isatty() else "") + "interrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None


def _with_installation(settings: FileSettings, path: str | None, given: str | None) -> FileSettings:
    """The installation id: the file's, else --installation-id; one of them is required, and
    two that differ are refused (which one acts is not a guess to make)."""
    import dataclasses

    from .config.models import Installation

    given = given or None  # an empty AUTOSCALER_INSTALLATION_ID is not an id
    if path is not None:
        if given is not None and given != settings.installation.id:
            fail(
                f"run: --installation-id {given!r} differs from installation.id "
                f"{settings.installation.id!r} in {path}; give one of them"
            )
        return settings
    if not given:
        fail(
            "run: without a configuration file give --installation-id ID (or "
            "AUTOSCALER_INSTALLATION_ID): the owner label and tag this installation acts on, "
            "unique among installations sharing a cluster or cloud account"
        )
    try:
        installation = Installation(id=given)
    except ValueError:
        fail(
            f"run: --installation-id {given!r}: 1 to 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (a label value)"
        )
    return dataclasses.replace(settings, installation=installation)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"autoscaler, version {installed_version()}")
    ctx.exit()


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def cli() -> None:
    """Elastic autoscaler for AI workloads: queue- and GPU-aware scaling of LLM serving and
    GPU batch pools on Kubernetes and AWS."""


@cli.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="configuration file (optional with --crd-pools: settings and extra pools)",
)
@click.option("--once", is_flag=True, help="run one tick and exit")
@click.option(
    "--dry-run",
    is_flag=True,
    help="shadow mode: read everything, decide and report (logs, status, Events, metrics), "
    "change nothing",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False),
    help="persist planner memory here (JSON), so a restart carries on",
)
@click.option("--json-logs", is_flag=True, help="structured JSON log lines")
@output_option(what="the tick (with --once)")
@json_flag_alias()
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="reach the cluster with this kubeconfig (default: in-cluster, else KUBECONFIG)",
)
@click.option("--crd-pools", is_flag=True, help="scale the AutoscalingPool objects too")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="watch AutoscalingPools in this namespace (repeat; default: the pod's namespace)",
)
@click.option(
    "--leader-elect",
    is_flag=True,
    help="act only while holding the leader Lease (a --dry-run shadow needs its own --lease-name)",
)
@click.option("--lease-name", default="elastic-autoscaler", show_default=True)
@click.option("--lease-namespace", help="default: the pod's namespace")
@click.option("--identity", help="this replica's name in the Lease (default: hostname-pid)")
@click.option(
    "--lease-duration",
    default="15s",
    show_default=True,
    callback=duration(1.0, 3600.0),
    help="a standby takes over this long after the leader's last renewal (1s to 1h)",
)
@click.option("--health-port", type=click.IntRange(0, 65535), help="serve /healthz, /readyz")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="serve /metrics")
@click.option("--bind", default="0.0.0.0", show_default=True, help="address for the ports")
@click.option(
    "--interval",
    callback=duration(0.1, 3600.0),
    help="seconds between ticks, 100ms to 1h (default: the file's)",
)
@click.option(
    "--installation-id",
    envvar="AUTOSCALER_INSTALLATION_ID",
    help="the owner label/tag this installation acts on; required without a file (which "
    "names it as installation.id); env AUTOSCALER_INSTALLATION_ID",
)
def run(
    config_path: str | None,
    once: bool,
    dry_run: bool,
    state: str | None,
    json_logs: bool,
    output: str,
    kubeconfig: str | None,
    crd_pools: bool,
    namespaces: tuple[str, ...],
    leader_elect: bool,
    lease_name: str,
    lease_namespace: str | None,
    identity: str | None,
    lease_duration: float,
    health_port: int | None,
    metrics_port: int | None,
    bind: str,
    interval: float | None,
    installation_id: str | None,
) -> None:
    """Run the controller: pools from a file and/or AutoscalingPool objects, against real
    endpoints (AWS_ENDPOINT_URL and the usual credential chain are honoured), in a cluster
    or with --kubeconfig. SIGTERM/SIGINT finish the tick in progress, then exit."""
    import os
    from pathlib import Path

    from autoscaler.errors import ProviderUnavailable, SourceUnavailable

    from .cli_run import ClusterOptions, build_process
    from .config.file_settings import load_settings
    from .logs import setup_logging
    from .process import ProcessSettings

    setup_logging(json_logs)
    if config_path is None and not crd_pools:
        fail("run: give a configuration file (-c FILE), or --crd-pools, or both")
    if namespaces and not crd_pools:
        fail("run: --namespace chooses where AutoscalingPools are read; add --crd-pools")
    try:
        file_settings = load_settings(config_path, pools_optional=crd_pools)
    except ConfigError as exc:
        config_errors(exc)
        sys.exit(2)
    file_settings = _with_installation(file_settings, config_path, installation_id)
    if kubeconfig:
        # The Kubernetes providers and signal sources build their own clients from it.
        os.environ["KUBECONFIG"] = str(Path(kubeconfig).resolve())
    settings = ProcessSettings(
        file=file_settings,
        dry_run=dry_run,
        json_logs=json_logs,
        state=Path(state) if state else None,
        once=once,
        health_port=health_port,
        metrics_port=metrics_port,
        bind=bind,
        interval=interval,
    )
    cluster = ClusterOptions(
        crd_pools=crd_pools,
        namespaces=list(namespaces),
        kubeconfig=kubeconfig,
        leader_elect=leader_elect,
        lease_name=lease_name,
        lease_namespace=lease_namespace,
        identity=identity or "",
        lease_duration=lease_duration,
    )
    try:
        process = build_process(settings, cluster)
        process.stop_on_signals()
        result = process.run()
    except (ProviderUnavailable, SourceUnavailable, ValueError, OSError) as exc:
        fail(plain(exc))
    if once and result is not None:
        output = chosen_format(output)
        if output != "table":
            emit(_tick_json(result), output)
        else:
            emit(_tick_json(result), output, lambda: _tick_table(result))
        failed = [a for a in result.actions if a.error]
        sys.exit(1 if failed or result.skipped else 0)


def _tick_json(result: object) -> dict[str, object]:
    from .controller import TickResult

    assert isinstance(result, TickResult)
    return {
        "at": result.at,
        "decisions": [d.to_dict() for d in result.decisions],
        "actions": [
            {
                "pool": a.pool,
                "request_id": a.request_id,
                "desired": a.desired,
                "applied": a.applied,
                "error": a.error,
                "error_code": a.error_code,
            }
            for a in result.actions
        ],
        "skipped": result.skipped,
    }


def _tick_table(result: object) -> list[RenderableType]:
    """The tick for people: each pool's decision and what was done about it."""
    from rich.table import Table

    from .controller import TickResult

    assert isinstance(result, TickResult)
    actions = {a.pool: a for a in result.actions}
    table = Table(title=f"tick at {result.at:g}")
    for column in ("pool", "now", "recommended", "desired", "direction", "applied"):
        table.add_column(column, justify="left" if column == "pool" else "right")
    table.add_column("reason", overflow="fold")
    for d in result.decisions:
        action = actions.get(d.pool)
        done = "-" if action is None else "yes" if action.applied else action.error or "no"
        table.add_row(
            d.pool, str(d.current), str(d.recommended), str(d.desired), d.direction, done,
            d.reason,
        )  # fmt: skip
    if result.skipped:
        why = "; ".join(f"{pool}: {reason}" for pool, reason in result.skipped.items())
        return [table, f"skipped: {why}"]
    return [table]


def _register_lab() -> None:
    from .cli_activator import activator_cmd
    from .cli_explain import explain_cmd
    from .cli_iam import iam_policy_cmd
    from .cli_info import crd_cmd, schema_cmd, version_cmd
    from .cli_sim import simulate_cmd
    from .cli_sweep import sweep_cmd
    from .cli_validate import validate_cmd

    cli.add_command(validate_cmd, name="validate")
    cli.add_command(schema_cmd, name="schema")
    cli.add_command(crd_cmd, name="crd")
    cli.add_command(version_cmd, name="version")
    cli.add_command(simulate_cmd, name="simulate")
    cli.add_command(sweep_cmd, name="sweep")
    cli.add_command(activator_cmd, name="activator")
    cli.add_command(explain_cmd, name="explain")
    cli.add_command(iam_policy_cmd, name="iam-policy")


_register_lab()


def main() -> None:
    cli(prog_name="autoscaler")


if __name__ == "__main__":
    main()
