"""The ``watches:`` section of kiosk.yaml, as pydantic models.

A watch is a named set of subscriptions (git repositories, container images, Helm charts, each
with its filters) and the reactions that fire when an event refreshes it::

    watches:
      - name: checkout-images
        project: payments                    # optional: only this project's receivers refresh it
        subscriptions:
          - image: contoso.azurecr.io/checkout
            tags: ["1.*"]                    # exact, glob or semver range (see kiosk.watches.filters)
          - git: https://dev.azure.com/contoso/payments/_git/checkout
            branches: [main]
            events: [push]                   # push | delete | pullRequestMerged | pullRequestAbandoned
          - chart: oci://contoso.azurecr.io/helm/checkout
            versions: ["^1.2"]
        reactions:
          - runAction:                       # Port's template style: "{{ jq }}" inside strings
              action: deploy_service
              entity: checkout
              properties: {environment: staging, version: "{{ .tag }}"}
          - upsertEntity:                    # Ocean's mapping style: every value is a jq expression
              blueprint: '"image"'
              identifier: .repository + ":" + .tag
              properties: {digest: .digest}

Filters are compiled and jq expressions checked while the file is loaded, so a typo is an error
naming its line instead of a watch that silently never matches. Filters are required (an empty
list matches nothing; ``["*"]`` means every name): see :mod:`kiosk.watches.filters`.

The jq programs run over the event document described in :mod:`kiosk.watches.reactions`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kiosk.actions.payload import check_templates
from kiosk.core.jq_sandbox import compile_jq
from kiosk.errors import ValidationFailed
from kiosk.watches.events import CHANGES, Change, Kind
from kiosk.watches.filters import FilterSet, compile_filters
from kiosk.watches.normalise import chart_key, git_key, image_key

__all__ = [
    "NAME_PATTERN",
    "ReactionSpec",
    "RunActionSpec",
    "SubscriptionSpec",
    "UpsertEntitySpec",
    "WatchSpec",
]

#: Watch, receiver and project names: they appear in URLs, CLI arguments and log lines.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"

_MODEL = ConfigDict(extra="forbid", frozen=True)


def _error(kind: str, message: str) -> PydanticCustomError:
    # The message goes through the context so braces in user text are never read as placeholders.
    return PydanticCustomError(kind, "{message}", {"message": message})


def _checked_filters(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    try:
        compile_filters(value)
    except ValueError as exc:
        raise _error("invalid_filter", str(exc)) from None
    return value


def check_jq(expression: str) -> str:
    """Compile ``expression`` to refuse a syntax error at load time; the expression itself back."""
    if not expression.strip():
        raise _error("invalid_jq", "an empty jq expression")
    try:
        compile_jq(expression)
    except ValueError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "syntax error")
        raise _error("invalid_jq", f"{expression!r} is not a valid jq expression: {first}") from None
    return expression


class SubscriptionSpec(BaseModel):
    """One repository a watch follows: exactly one of ``git``, ``image`` or ``chart``, and its filters."""

    model_config = _MODEL

    git: StrictStr | None = Field(default=None, min_length=1, max_length=2000)
    image: StrictStr | None = Field(default=None, min_length=1, max_length=2000)
    chart: StrictStr | None = Field(default=None, min_length=1, max_length=2000)
    branches: list[StrictStr] | None = None
    tags: list[StrictStr] | None = None
    versions: list[StrictStr] | None = None
    events: list[Change] | None = None

    @field_validator("branches", "tags", "versions")
    @classmethod
    def _filters_compile(cls, value: list[str] | None) -> list[str] | None:
        return _checked_filters(value)

    @model_validator(mode="after")
    def _one_repository_with_its_filters(self) -> SubscriptionSpec:
        given = [k for k in ("git", "image", "chart") if getattr(self, k) is not None]
        if len(given) != 1:
            raise _error("subscription", "a subscription names exactly one of git, image or chart")
        kind = given[0]
        allowed = {"git": {"branches", "tags", "events"}, "image": {"tags"}, "chart": {"versions"}}[kind]
        for extra in ("branches", "tags", "versions", "events"):
            if extra not in allowed and getattr(self, extra) is not None:
                raise _error("subscription", f"{extra} does not apply to a {kind} subscription")
        if kind == "git" and self.branches is None and self.tags is None:
            raise _error("subscription", "a git subscription needs branches or tags (write branches: ['*'] for all)")
        if kind == "image" and self.tags is None:
            raise _error("subscription", "an image subscription needs tags (write tags: ['*'] for all)")
        if kind == "chart" and self.versions is None:
            raise _error("subscription", "a chart subscription needs versions (write versions: ['*'] for all)")
        if self.events is not None and not self.events:
            raise _error("subscription", f"events must name at least one of {', '.join(CHANGES)}")
        return self

    @property
    def kind(self) -> Kind:
        return "git" if self.git is not None else "image" if self.image is not None else "chart"

    @property
    def url(self) -> str:
        value = self.git or self.image or self.chart
        assert value is not None
        return value

    def key(self) -> str:
        """The normalised repository key (see :mod:`kiosk.watches.normalise`)."""
        if self.kind == "git":
            return git_key(self.url)
        if self.kind == "image":
            return image_key(self.url)
        return chart_key(self.url)

    def filter_sets(self) -> tuple[FilterSet | None, FilterSet | None]:
        """(branch filters, tag/version filters), None where the subscription has none."""
        branches = compile_filters(self.branches) if self.branches is not None else None
        tags = self.versions if self.kind == "chart" else self.tags
        return branches, compile_filters(tags) if tags is not None else None

    def changes(self) -> tuple[Change, ...]:
        """The git changes that refresh (``push`` unless ``events`` says otherwise)."""
        return tuple(self.events) if self.events else ("push",)


class RunActionSpec(BaseModel):
    """Start a run of ``action``; ``entity`` and ``properties`` are Port templates over the event."""

    model_config = _MODEL

    action: StrictStr = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9@_=-]+$")
    entity: StrictStr | None = Field(default=None, min_length=1, max_length=1000)
    properties: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _templates_compile(self) -> RunActionSpec:
        try:
            check_templates({"entity": self.entity, "properties": self.properties}, "runAction")
        except ValidationFailed as exc:
            raise _error("invalid_template", exc.message) from None
        return self


class UpsertEntitySpec(BaseModel):
    """Upsert an entity; every value is a jq expression over the event (Ocean's mapping style)."""

    model_config = _MODEL

    blueprint: StrictStr
    identifier: StrictStr
    title: StrictStr | None = None
    properties: dict[str, StrictStr] = Field(default_factory=dict)
    relations: dict[str, StrictStr] = Field(default_factory=dict)

    @field_validator("blueprint", "identifier", "title")
    @classmethod
    def _jq(cls, value: str | None) -> str | None:
        return None if value is None else check_jq(value)

    @field_validator("properties", "relations")
    @classmethod
    def _jq_values(cls, value: dict[str, str]) -> dict[str, str]:
        for expression in value.values():
            check_jq(expression)
        return value


class ReactionSpec(BaseModel):
    """What a refresh does: exactly one of ``runAction`` or ``upsertEntity``."""

    model_config = _MODEL

    runAction: RunActionSpec | None = None
    upsertEntity: UpsertEntitySpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ReactionSpec:
        if (self.runAction is None) == (self.upsertEntity is None):
            raise _error("reaction", "a reaction is exactly one of runAction or upsertEntity")
        return self

    @property
    def kind(self) -> str:
        return "runAction" if self.runAction is not None else "upsertEntity"


class WatchSpec(BaseModel):
    """A named set of subscriptions and the reactions a refresh fires (Kargo's Warehouse role)."""

    model_config = _MODEL

    name: StrictStr = Field(pattern=NAME_PATTERN)
    project: StrictStr | None = Field(default=None, pattern=NAME_PATTERN)
    title: StrictStr | None = Field(default=None, max_length=1000)
    subscriptions: list[SubscriptionSpec] = Field(min_length=1)
    reactions: list[ReactionSpec] = Field(default_factory=list)

    @field_validator("reactions", mode="before")
    @classmethod
    def _no_reactions(cls, value: Any) -> Any:
        return [] if value is None else value
