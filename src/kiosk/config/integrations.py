"""kiosk.yaml's ``integrations:``: each mapping checked with file and line, and the integrations made
ready to run (Ocean's environment applied, secrets resolved).

The settings' shape is :mod:`kiosk.ingest.config`'s and the mapping's :mod:`kiosk.ingest.mapping`'s;
this module puts them in files. The config loader reads a mapping given as a path (relative to the
config file) and hands its document here with the file's positions, so every problem is a
:class:`~kiosk.errors.ConfigError` naming the file (kiosk.yaml or the mapping file), the line and
the field. A mapping field whose jq does not compile is not an error (Ocean maps it to null, and
its own default mapping has one): it is logged as a warning with its place, and kept in
:attr:`~kiosk.ingest.config.LoadedMapping.warnings`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from kiosk.config.model import SourceMap, format_loc
from kiosk.config.secrets import resolve_secret
from kiosk.errors import ConfigError
from kiosk.ingest.config import (
    Integration,
    IntegrationSpec,
    LoadedMapping,
    OceanEnvironment,
    OceanEnvironmentError,
    deep_merge,
    ocean_environment,
)
from kiosk.ingest.defaults import default_mapping
from kiosk.ingest.mapping import MappingError, parse_port_app_config

if TYPE_CHECKING:
    from kiosk.config.model import KioskConfig

__all__ = ["check_mapping", "resolve_integrations"]

log = logging.getLogger(__name__)


def check_mapping(
    identifier: str, data: Any, where: SourceMap, prefix: Sequence[str | int], origin: str
) -> LoadedMapping:
    """Parse integration ``identifier``'s mapping document ``data``, found at ``prefix`` in ``where``.

    ``origin`` is what :attr:`LoadedMapping.source` will say (``kiosk.yaml:12`` or a file's path).
    """
    try:
        mapping = parse_port_app_config(data)
    except MappingError as exc:
        raise _mapping_error(exc, where, prefix) from None
    warnings = tuple(f"{where.describe((*prefix, *w.loc))}: {w.message}" for w in mapping.warnings)
    for warning in warnings:
        log.warning("integration %s: %s", identifier, warning)
    return LoadedMapping(mapping, origin, warnings)


def _mapping_error(exc: MappingError, where: SourceMap, prefix: Sequence[str | int]) -> ConfigError:
    # The problem nearest the top of the file first, as for the rest of the config.
    located = sorted(
        ((where.line((*prefix, *p.loc)), i, (*prefix, *p.loc), p.message) for i, p in enumerate(exc.problems)),
        key=lambda t: (t[0], t[1]),
    )
    _, _, loc, message = located[0]
    text = f"{where.describe(loc)}: {message}"
    if len(located) > 1:
        text += f" (and {len(located) - 1} more error{'s' if len(located) > 2 else ''})"
    details = [{"line": line, "field": format_loc(p_loc), "message": msg} for line, _, p_loc, msg in located]
    return ConfigError(text, details=details)


def resolve_integrations(config: KioskConfig, *, env: Mapping[str, str], base_dir: Path) -> list[Integration]:
    """The integrations to run: kiosk.yaml's, with Ocean's ``OCEAN__`` variables of ``env`` applied
    (see :mod:`kiosk.ingest.config` for the precedence), mappings attached and secrets resolved.

    ``base_dir`` is where relative ``{file: PATH}`` references resolve from (the config file's
    directory). Any problem is a ConfigError naming the variable, the field or the reference.
    """
    try:
        environment = ocean_environment(env)
    except OceanEnvironmentError as exc:
        raise ConfigError(str(exc)) from None
    specs = list(config.integrations)
    mappings = {spec.identifier: config.integration_mapping(spec.identifier) for spec in specs}
    if environment is not None:
        index = next((i for i, spec in enumerate(specs) if spec.identifier == environment.identifier), None)
        base = specs[index].model_dump(by_alias=True, exclude_unset=True) if index is not None else {}
        merged = _validate_from_environment(deep_merge(base, environment.item), environment)
        if index is None:
            specs.append(merged)
            mappings[merged.identifier] = LoadedMapping(default_mapping(), "default")
        else:
            specs[index] = merged
    return [_ready(spec, mappings[spec.identifier], env=env, base_dir=base_dir) for spec in specs]


def _validate_from_environment(item: dict[str, Any], environment: OceanEnvironment) -> IntegrationSpec:
    try:
        return IntegrationSpec.model_validate(item)
    except ValidationError as exc:
        messages = []
        for error in exc.errors(include_url=False):
            loc = tuple(str(part) for part in error["loc"])
            names = environment.source_of(loc) or ["(none: kiosk.yaml's value)"]
            field = format_loc(error["loc"]) or "integration"
            message = "field required" if error["type"] == "missing" else error["msg"]
            messages.append(f"{', '.join(names)}: integration {environment.identifier!r}: {field}: {message}")
        more = f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""
        raise ConfigError(f"environment variable {messages[0]}{more}") from None


def _ready(spec: IntegrationSpec, mapping: LoadedMapping, *, env: Mapping[str, str], base_dir: Path) -> Integration:
    settings = spec.config
    webhook_secret = settings.webhookSecret
    return Integration(
        spec=spec,
        mapping=mapping.config,
        mapping_source=mapping.source,
        personal_access_token=resolve_secret(settings.personalAccessToken, base_dir=base_dir, env=env),
        webhook_secret=None if webhook_secret is None else resolve_secret(webhook_secret, base_dir=base_dir, env=env),
    )
