"""`autoscaler iam-policy`: the least-privilege IAM policy for a configuration, as JSON.

The work is autoscaler/aws_iam.py; this module parses the options, prints the policy and
the notes (on standard error, so `> policy.json` keeps only the document).
"""

from __future__ import annotations

import json

import click

from .cli_options import config_errors, fail
from .cli_output import dumps, format_of, legacy_output_option, note, out_option
from .config import ConfigError, load_config


@click.command(name="iam-policy")
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="configuration file",
)
@legacy_output_option(("json", "yaml"), "the policy document")
@out_option("the policy", instead=True)
@click.option(
    "--region",
    envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
    help="region of targets and sources that set none (default: AWS_REGION, as the "
    "controller takes it)",
)
@click.option(
    "--account",
    help="12-digit account id written into resource ARNs (default: `*`; the ids in them "
    "are unique anyway)",
)
@click.option(
    "--instance-role",
    "instance_roles",
    multiple=True,
    metavar="ARN",
    help="role inside the instance profile that launched instances get (from the config's "
    "`instance_profile` or the launch template); the only role iam:PassRole allows. Repeat "
    "for several",
)
def iam_policy_cmd(
    config_path: str,
    output: tuple[str, str | None],
    out_file: str | None,
    region: str | None,
    account: str | None,
    instance_roles: tuple[str, ...],
) -> None:
    """Print the IAM policy the controller's role needs for a configuration: its EC2 pools,
    Auto Scaling groups, node provisioning, SQS queues and CloudWatch metrics, in their
    regions, and nothing more (docs/aws.md, "IAM policy")."""
    from .aws_iam import IamOptions, IamPolicyError, generate_policy

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        config_errors(exc)
        raise SystemExit(2) from None
    options = IamOptions(default_region=region, account=account, instance_roles=instance_roles)
    try:
        policy = generate_policy(config, options)
    except IamPolicyError as exc:
        fail(f"{config_path}: {exc}")
    for line in policy.notes:
        note(f"note: {line}")
    fmt, legacy_file = output
    path = out_file or legacy_file
    if path:
        fmt = format_of(out_file) if out_file else fmt
    text = policy.text() if fmt == "json" else dumps(json.loads(policy.text()), fmt)
    if not path:
        click.echo(text, nl=False)
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    note(f"wrote {path}")
