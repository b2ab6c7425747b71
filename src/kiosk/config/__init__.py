"""Config as code: kiosk.yaml loaded with file/line errors, secrets by reference, idempotent apply.

load_config(path) -> KioskConfig      parse + validate (ConfigError names file, line, field)
apply_config(catalog, config)         make the catalog match the file; returns an ApplyReport
SecretRef / resolve_secret / Secret   ``{env: NAME}`` / ``{file: PATH}`` references
"""

from kiosk.config.apply import ApplyReport, ApplyResult, apply_config
from kiosk.config.loader import load_config, parse_config
from kiosk.config.model import BlueprintSpec, EntitySpec, KioskConfig, SourceMap
from kiosk.config.secrets import Secret, SecretRef, resolve_secret

__all__ = [
    "ApplyReport",
    "ApplyResult",
    "BlueprintSpec",
    "EntitySpec",
    "KioskConfig",
    "Secret",
    "SecretRef",
    "SourceMap",
    "apply_config",
    "load_config",
    "parse_config",
    "resolve_secret",
]
