"""The configuration file of a controller whose pools may come from the cluster.

With `--crd-pools` the file is optional and may hold settings only (`installation`,
`controller`) and no `pools`: the AutoscalingPool objects supply them. Everything else in
the file is validated exactly as `autoscaler validate` does, with every error listed; a
file must name its `installation.id`. Without a file `autoscaler run` requires
`--installation-id` (cli.py); NO_FILE_INSTALLATION (`default`) is left for callers that own
nothing (the activator) and for the library.

This module must never talk to a cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoscaler.config import (
    Config,
    ConfigError,
    ControllerSettings,
    Installation,
    Pool,
    load_config,
)
from autoscaler.config.loader import interpolate, read_yaml
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.config.triggers import Trigger

NO_FILE_INSTALLATION = Installation(id="default")
"""The installation of a process started without a configuration file (`--crd-pools`)."""


@dataclass(frozen=True)
class FileSettings:
    """What a file gives the process: settings, its pools (maybe none) and its folder."""

    installation: Installation = NO_FILE_INSTALLATION
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    pools: tuple[Pool, ...] = ()
    base_dir: Path | None = None
    nodes: NodeProvisioning | None = None
    triggers: tuple[Trigger, ...] = ()

    @classmethod
    def of(cls, config: Config) -> FileSettings:
        return cls(
            config.installation, config.controller, tuple(config.pools), config._base_dir,
            config.nodes, tuple(config.triggers),
        )  # fmt: skip

    def settings(self) -> dict[str, Any]:
        """The non-pool fields, as `Config` takes them."""
        return {"installation": self.installation, "controller": self.controller,
                "nodes": self.nodes, "triggers": list(self.triggers)}  # fmt: skip


def _only_pools_missing(error: ConfigError) -> bool:
    return all(issue.path == "pools" for issue in error.issues)


def load_settings(path: str | None, pools_optional: bool) -> FileSettings:
    """The file's settings and pools; without a file, the defaults. With `pools_optional`
    a file without pools is fine; ConfigError otherwise, as `load_config` raises it."""
    if path is None:
        return FileSettings()
    try:
        return FileSettings.of(load_config(path))
    except ConfigError as exc:
        if not (pools_optional and _only_pools_missing(exc)):
            raise
    # Everything but `pools` validated above, so these cannot fail on the same data.
    data = read_yaml(Path(path).read_text(encoding="utf-8"), path, {}, []) or {}
    data = interpolate(data, os.environ, (), [])
    return FileSettings(
        Installation.model_validate(data["installation"]),
        ControllerSettings.model_validate(data.get("controller") or {}),
        (),
        Path(path).resolve().parent,
        NodeProvisioning.model_validate(data["nodes"]) if data.get("nodes") else None,
        tuple(Trigger.model_validate(t) for t in data.get("triggers") or ()),
    )
