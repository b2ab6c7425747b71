"""An Azure DevOps integration's settings: kiosk.yaml's ``integrations:`` items and Ocean's environment.

In kiosk.yaml, one item per integration, with the names of Ocean's Helm values (``integration.*``
and the top-level ``scheduledResyncInterval``, ``initializePortResources``,
``sendRawDataExamples``) and secrets by reference::

    integrations:
      - identifier: ado                       # Ocean's integration identifier
        type: azure-devops
        config:
          organizationUrl: https://dev.azure.com/contoso    # or organizationUrls: [url, ...]
          personalAccessToken: {env: ADO_PAT}               # {env: NAME} or {file: PATH}, never the PAT
          isProjectsLimited: true
          excludedTags: [archived]
          webhookSecret: {env: ADO_HOOK_SECRET}
          webhookAuthUsername: port
          appHost: https://kiosk.example.com
        eventListener: {type: POLLING}        # POLLING, ONCE or WEBHOOKS_ONLY
        scheduledResyncInterval: 60           # minutes
        incrementalSyncInterval: 5            # minutes, shorter than the above; off when unset
        initializePortResources: true
        sendRawDataExamples: true
        port-app-config: mappings/ado.yaml    # (or mapping:) a file beside kiosk.yaml, or the mapping inline

Values are parsed as leniently as Ocean parses them (``'true'`` is a boolean), so Helm values paste
in unchanged. Ocean's environment variables are read too (:func:`ocean_environment`): they set the
integration whose identifier ``OCEAN__INTEGRATION__IDENTIFIER`` names (Ocean's default,
``my-azure-devops-integration``, when unset), over what kiosk.yaml says for it, key by key — the
precedence Ocean itself gives its environment over its config file — or define it when kiosk.yaml
has no such integration. Secrets given in the environment are kept as references to their
variable, never copied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kiosk.config.secrets import Secret, SecretRef
from kiosk.ingest.mapping import PortAppConfig

__all__ = [
    "DEFAULT_IDENTIFIER",
    "OCEAN_ENV_PREFIX",
    "AzureDevOpsSettings",
    "EventListener",
    "Integration",
    "IntegrationSpec",
    "LoadedMapping",
    "OceanEnvironment",
    "OceanEnvironmentError",
    "deep_merge",
    "ocean_environment",
]

#: Ocean's identifier for an integration whose environment names none.
DEFAULT_IDENTIFIER = "my-azure-devops-integration"
OCEAN_ENV_PREFIX = "OCEAN__"

# Secret references inside: a refused literal must not reach ValidationError's text.
_MODEL = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

#: Integration identifiers end up in URL paths and in entities' ``$datasource``.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


def _organization_url(value: Any) -> Any:
    """Ocean's ``NoTrailingSlashUrl``, for http(s) only: ``https://dev.azure.com/contoso/`` -> without the ``/``."""
    if not isinstance(value, str):
        return value
    url = value.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    if (
        not sep
        or scheme.lower() not in ("http", "https")
        or not host
        or any(c in url for c in " ?#")
        or host.startswith(":")
    ):
        raise PydanticCustomError(
            "url",
            "{url} is not an organization URL: expected http(s)://host[/path], e.g. https://dev.azure.com/contoso",
            {"url": repr(value)},
        )
    return url


class AzureDevOpsSettings(BaseModel):
    """``config:`` Ocean's Azure DevOps integration settings (its ``.port/spec.yaml``), single-account mode."""

    model_config = _MODEL

    accountMode: Literal["Single Account"] = Field(
        default="Single Account", description="Ocean's service-principal mode (Multiple Accounts) is not supported."
    )
    organizationUrl: str | None = None
    organizationUrls: list[str] | None = None
    personalAccessToken: SecretRef
    isProjectsLimited: bool = True
    excludedTags: list[StrictStr] = Field(default_factory=list)
    webhookSecret: SecretRef | None = None
    webhookAuthUsername: str = Field(default="port", min_length=1, pattern=r"^[^:\s]+$")
    appHost: str | None = None

    @field_validator("organizationUrl", "appHost", mode="before")
    @classmethod
    def _url(cls, value: Any) -> Any:
        return _organization_url(value)

    @field_validator("organizationUrls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        # Ocean's integration takes a list, or a comma-separated string (older Helm values).
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [_organization_url(item) for item in value]
        return value

    @model_validator(mode="after")
    def _one_way_to_name_organizations(self) -> AzureDevOpsSettings:
        if self.organizationUrl is not None and self.organizationUrls is not None:
            raise PydanticCustomError("organization", "give organizationUrl or organizationUrls, not both")
        if self.organizationUrl is None and not self.organizationUrls:
            raise PydanticCustomError("organization", "give organizationUrl (or organizationUrls, a non-empty list)")
        return self

    def organization_urls(self) -> list[str]:
        """Every organisation this integration ingests, each once, in the order given."""
        urls = [self.organizationUrl] if self.organizationUrl is not None else list(self.organizationUrls or [])
        return list(dict.fromkeys(urls))


class EventListener(BaseModel):
    """``eventListener:`` when resyncs run. POLLING: at start, on request and every
    ``scheduledResyncInterval``; ONCE: one resync, then stop; WEBHOOKS_ONLY: live events only."""

    model_config = _MODEL

    type: Literal["POLLING", "ONCE", "WEBHOOKS_ONLY"] = "POLLING"


class IntegrationSpec(BaseModel):
    """One item of ``integrations:``. The mapping stays as written (a path or a document); the config
    loader reads and checks it, to name the right file and line in its errors."""

    model_config = _MODEL

    identifier: StrictStr = Field(pattern=IDENTIFIER_PATTERN)
    type: Literal["azure-devops"]
    config: AzureDevOpsSettings
    eventListener: EventListener = Field(default_factory=EventListener)
    scheduledResyncInterval: int | None = Field(default=None, ge=1, description="minutes between resyncs")
    incrementalSyncInterval: int | None = Field(
        default=None,
        ge=1,
        description="minutes between incremental passes (only what changed since the last read); off when unset",
    )
    initializePortResources: bool = True
    sendRawDataExamples: bool = True
    port_app_config: dict[str, Any] | StrictStr | None = Field(default=None, alias="port-app-config")
    mapping: dict[str, Any] | StrictStr | None = None

    @field_validator("eventListener", mode="before")
    @classmethod
    def _empty_listener_is_default(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _one_mapping(self) -> IntegrationSpec:
        if self.port_app_config is not None and self.mapping is not None:
            raise PydanticCustomError("mapping", "give port-app-config or mapping, not both")
        return self

    @model_validator(mode="after")
    def _incremental_between_resyncs(self) -> IntegrationSpec:
        # An incremental pass as often as the full resync (or less) reads a part of what the
        # resync reads anyway: a setting that says the opposite of what its author meant.
        incremental, full = self.incrementalSyncInterval, self.scheduledResyncInterval
        if incremental is not None and full is not None and incremental >= full:
            raise PydanticCustomError(
                "incremental_interval",
                "incrementalSyncInterval ({incremental} minutes) must be shorter than scheduledResyncInterval "
                "({full} minutes): incremental passes run between full resyncs",
                {"incremental": incremental, "full": full},
            )
        return self

    @property
    def mapping_key(self) -> str | None:
        """Which key holds the mapping (``port-app-config`` or ``mapping``), None when it is the default."""
        if self.port_app_config is not None:
            return "port-app-config"
        if self.mapping is not None:
            return "mapping"
        return None

    @property
    def mapping_value(self) -> dict[str, Any] | str | None:
        """The mapping as written: a file path, an inline document, or None (the default mapping)."""
        return self.port_app_config if self.port_app_config is not None else self.mapping


@dataclass(frozen=True)
class LoadedMapping:
    """An integration's mapping, checked, with where it came from (``file:line``, a path, ``default``)."""

    config: PortAppConfig
    source: str
    #: ``file:line: field: message`` for each field whose jq does not compile (it maps to null).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Integration:
    """An integration ready to run: its settings (file and environment merged), its checked mapping
    and its secrets, resolved. What the resync engine is given."""

    spec: IntegrationSpec
    mapping: PortAppConfig
    #: Where the mapping came from: ``kiosk.yaml:12``, a mapping file's path, or ``default``.
    mapping_source: str
    personal_access_token: Secret = field(repr=False)
    webhook_secret: Secret | None = field(default=None, repr=False)

    @property
    def identifier(self) -> str:
        return self.spec.identifier


# ---------------------------------------------------------------------------------------------
# Ocean's environment variables
# ---------------------------------------------------------------------------------------------

#: ``OCEAN__INTEGRATION__CONFIG__<NAME>`` -> the ``config:`` key, for the settings above.
_CONFIG_KEYS = {
    "ACCOUNT_MODE": "accountMode",
    "ORGANIZATION_URL": "organizationUrl",
    "ORGANIZATION_URLS": "organizationUrls",
    "PERSONAL_ACCESS_TOKEN": "personalAccessToken",
    "IS_PROJECTS_LIMITED": "isProjectsLimited",
    "EXCLUDED_TAGS": "excludedTags",
    "WEBHOOK_SECRET": "webhookSecret",
    "WEBHOOK_AUTH_USERNAME": "webhookAuthUsername",
    "APP_HOST": "appHost",
}
_SECRET_CONFIG_KEYS = frozenset({"personalAccessToken", "webhookSecret"})
#: Settings Ocean's integration declares ``type: array``: their variable holds JSON (Ocean's
#: ``dynamic_parse``); a string that is not JSON is left as it is (a comma list for organizationUrls).
_ARRAY_CONFIG_KEYS = frozenset({"organizationUrls", "excludedTags"})
#: Other variables -> where they go in an ``integrations:`` item.
_TOP_LEVEL: dict[str, tuple[str, ...]] = {
    "INTEGRATION__IDENTIFIER": ("identifier",),
    "INTEGRATION__TYPE": ("type",),
    "EVENT_LISTENER__TYPE": ("eventListener", "type"),
    "SCHEDULED_RESYNC_INTERVAL": ("scheduledResyncInterval",),
    "INCREMENTAL_SYNC_INTERVAL": ("incrementalSyncInterval",),
    "INITIALIZE_PORT_RESOURCES": ("initializePortResources",),
    "SEND_RAW_DATA_EXAMPLES": ("sendRawDataExamples",),
    # Ocean's public URL (``OCEAN__BASE_URL``) is what its deprecated ``appHost`` was; Ocean
    # prefers it when both are set, so it is applied after OCEAN__INTEGRATION__CONFIG__APP_HOST.
    "BASE_URL": ("config", "appHost"),
}


@dataclass(frozen=True)
class OceanEnvironment:
    """The integration Ocean's environment variables describe, as an ``integrations:`` item's keys.

    ``item`` holds only what the environment sets; ``sources`` says which variable set each path.
    """

    identifier: str
    item: dict[str, Any]
    sources: dict[tuple[str, ...], str]

    def source_of(self, loc: tuple[str | int, ...]) -> list[str]:
        """The variables that set ``loc`` or anything under or above it (for an error's message)."""
        return sorted({name for path, name in self.sources.items() if path[: len(loc)] == tuple(loc)[: len(path)]})


class OceanEnvironmentError(ValueError):
    """An ``OCEAN__`` variable kiosk cannot take; the message names it."""


def ocean_environment(env: Mapping[str, str]) -> OceanEnvironment | None:
    """The integration set by Ocean's ``OCEAN__`` variables in ``env``, None when none of them is set.

    Names are matched without regard to case, as Ocean's settings do. Ocean variables about Port
    itself (``OCEAN__PORT__*``), its runtime and its tuning have no meaning for kiosk, which is the
    catalog, and are ignored; an ``OCEAN__INTEGRATION__CONFIG__`` name kiosk does not know is an
    error (a misspelt setting would otherwise be silently dropped).
    """
    item: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    config_prefix = "INTEGRATION__CONFIG__"
    found = {name[len(OCEAN_ENV_PREFIX) :].upper(): name for name in env if name.upper().startswith(OCEAN_ENV_PREFIX)}
    for suffix in sorted(found, key=lambda s: (s == "BASE_URL", s)):
        name = found[suffix]
        value: Any = env[name]
        if suffix.startswith(config_prefix):
            key = _CONFIG_KEYS.get(suffix[len(config_prefix) :])
            if key is None:
                known = ", ".join(f"{OCEAN_ENV_PREFIX}{config_prefix}{k}" for k in _CONFIG_KEYS)
                raise OceanEnvironmentError(
                    f"environment variable {name}: unknown integration setting (known: {known})"
                )
            if key in _SECRET_CONFIG_KEYS:
                value = {"env": name}
            elif key in _ARRAY_CONFIG_KEYS:
                value = _json_or_text(value)
            path: tuple[str, ...] = ("config", key)
        elif suffix in _TOP_LEVEL:
            path = _TOP_LEVEL[suffix]
            if suffix == "INTEGRATION__TYPE":
                value = value.lower()  # Ocean lower-cases the type
        else:
            continue
        _set(item, path, value)
        sources[path] = name
    if not sources:
        return None
    identifier = item.get("identifier") or DEFAULT_IDENTIFIER
    item["identifier"] = identifier
    item.setdefault("type", "azure-devops")
    return OceanEnvironment(identifier=identifier, item=item, sources=sources)


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _set(item: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = item
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys set on it; mappings merged key by key, anything else replaced.

    ``config.organizationUrl`` from the environment replaces the file's ``organizationUrls`` too:
    both name the organisations, and a file and an environment naming them differently would
    otherwise make an integration with both, which is refused.
    """
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and not _is_reference(value):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    config = out.get("config")
    over_config = over.get("config")
    if isinstance(config, dict) and isinstance(over_config, Mapping):
        for given, other in (("organizationUrl", "organizationUrls"), ("organizationUrls", "organizationUrl")):
            if given in over_config and other not in over_config:
                config.pop(other, None)
    return out


def _is_reference(value: Mapping[str, Any]) -> bool:
    """A secret reference is replaced whole: ``{file: x}`` over ``{env: Y}`` must not become both."""
    return set(value) <= {"env", "file"} and bool(value)
