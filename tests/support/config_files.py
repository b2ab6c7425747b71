"""kiosk.yaml files for the tests: written from an indented literal, loaded, applied, or refused."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kiosk.catalog.service import Catalog
from kiosk.config import ApplyReport, load_config
from kiosk.config.apply import apply_config
from kiosk.errors import ConfigError


def write_config(tmp_path: Path, text: str, name: str = "kiosk.yaml") -> Path:
    """``text`` (dedented, leading newlines dropped, so a test may indent its YAML) as ``tmp_path/name``."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def config_error(tmp_path: Path, text: str) -> ConfigError:
    """The error loading ``text`` as kiosk.yaml raises (the test fails if it loads)."""
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def apply_text(catalog: Catalog, tmp_path: Path, text: str, name: str = "kiosk.yaml") -> ApplyReport:
    """Load ``text`` as a config file and apply it to ``catalog``."""
    return apply_config(catalog, load_config(write_config(tmp_path, text, name)))


def apply_error(catalog: Catalog, tmp_path: Path, text: str) -> ConfigError:
    """The error applying ``text`` as kiosk.yaml to ``catalog`` raises (the test fails if it applies)."""
    with pytest.raises(ConfigError) as info:
        apply_text(catalog, tmp_path, text)
    return info.value
