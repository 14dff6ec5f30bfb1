"""`autoscaler version`, `schema` and `crd`: what this autoscaler is, and the documents
generated from its models (the configuration's JSON Schema, the AutoscalingPool CRD).

Each prints on standard output in `-o`'s format; `--out FILE` writes a file instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

import click

from .cli_options import fail
from .cli_output import (
    dumps,
    emit,
    format_of,
    legacy_output_option,
    note,
    out_option,
    output_option,
)
from .config import config_schema

DEPENDENCIES = (
    "click",
    "pydantic",
    "rich",
    "numpy",
    "kubernetes",
    "boto3",
    "aiohttp",
    "optuna",
    "ray",
)
"""The dependencies `autoscaler version` reports: the ones behaviour depends on most."""


def installed_version() -> str:
    """The installed package's version; 0+unknown when run from a tree never installed."""
    try:
        return package_version("elastic-autoscaler")
    except PackageNotFoundError:
        return "0+unknown"


@click.command(name="schema")
@legacy_output_option(("json", "yaml"), "the JSON Schema")
@out_option("the schema", instead=True)
def schema_cmd(output: tuple[str, str | None], out_file: str | None) -> None:
    """Print the JSON Schema of the configuration file."""
    data = config_schema()
    _print_document(
        output,
        out_file,
        lambda fmt: (
            json.dumps(data, indent=2, sort_keys=True) + "\n" if fmt == "json" else dumps(data, fmt)
        ),
    )


@click.command(name="crd")
@legacy_output_option(("yaml", "json"), "the CustomResourceDefinition")
@out_option("the CustomResourceDefinition", instead=True)
def crd_cmd(output: tuple[str, str | None], out_file: str | None) -> None:
    """Print the AutoscalingPool CustomResourceDefinition (YAML), generated from the pool
    schema: `autoscaler crd | kubectl apply -f -`."""
    from .kube.crd import crd, crd_yaml

    _print_document(
        output, out_file, lambda fmt: crd_yaml() if fmt == "yaml" else dumps(crd(), fmt)
    )


def _print_document(
    output: tuple[str, str | None], out_file: str | None, text: Callable[[str], str]
) -> None:
    """A generated document on standard output in `-o`'s format, or into --out FILE in the
    format its name says (the deprecated `-o FILE`: in the default format)."""
    fmt, legacy_file = output
    if out_file:
        _write_text(out_file, text(format_of(out_file)))
    elif legacy_file:
        _write_text(legacy_file, text(fmt))
    else:
        click.echo(text(fmt), nl=False)


@click.command(name="version")
@output_option(what="the versions")
def version_cmd(output: str) -> None:
    """Print the versions of the autoscaler, Python and its key dependencies."""
    import platform

    deps: dict[str, str | None] = {}
    for name in DEPENDENCIES:
        try:
            deps[name] = package_version(name)
        except PackageNotFoundError:
            deps[name] = None  # an optional extra that is not installed
    data = {
        "autoscaler": installed_version(),
        "python": platform.python_version(),
        "dependencies": deps,
    }
    if output == "table":
        click.echo(f"autoscaler {data['autoscaler']} (Python {data['python']})")
        for name, found in deps.items():
            click.echo(f"  {name} {found or '(not installed)'}")
        return
    emit(data, output)


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    note(f"wrote {path}")
