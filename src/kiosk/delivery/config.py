"""The ``delivery`` and ``egress`` sections of kiosk.yaml, as pydantic models.

They are embedded in kiosk's config model by the loader; on their own they validate the same way,
so the delivery worker and its tests use them directly. Field names are the camelCase the YAML
uses (``timeoutSeconds``); the Python attributes are snake_case.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kiosk.config.secrets import SecretRef

__all__ = ["STANDARD_WEBHOOKS_SCHEDULE", "DeliveryConfig", "EgressConfig"]

#: Delays in seconds between attempts, after an immediate first one: 5 s, 5 min, 30 min, 2 h, 5 h,
#: 10 h, 14 h, 20 h, 24 h (Standard Webhooks' schedule; about three days in all, ten attempts).
STANDARD_WEBHOOKS_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)

# A DNS name: dot-separated labels of letters, digits and hyphens (no leading/trailing hyphen).
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)

_MODEL_CONFIG = ConfigDict(
    extra="forbid",
    frozen=True,
    validate_by_name=True,
    validate_by_alias=True,
    # signingSecret is a reference, but a user may paste the secret itself: never echo input.
    hide_input_in_errors=True,
)


class EgressConfig(BaseModel):
    """Where outbound webhooks may go.

    By default only public addresses: a webhook URL pointing at loopback, a private network, a
    link-local address (cloud metadata at 169.254.169.254) and the like is refused, because a
    portal that lets users configure URLs would otherwise let them reach inside the network.
    ``allowLoopback`` opens loopback only (local development, the emulator); ``allow`` opens
    networks (CIDR or a single address) or exact host names.
    """

    model_config = _MODEL_CONFIG

    allow_loopback: bool = Field(default=False, alias="allowLoopback")
    allow: list[str] = Field(default_factory=list)

    @field_validator("allow")
    @classmethod
    def _cidr_or_host(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            text = entry.strip()
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                if not _HOST_NAME.match(text.rstrip(".")):
                    raise ValueError(f"{entry!r} is neither a CIDR, an IP address nor a host name") from None
        return [entry.strip() for entry in entries]


class DeliveryConfig(BaseModel):
    """How outbound webhooks are sent and retried (defaults follow Standard Webhooks and Svix)."""

    model_config = _MODEL_CONFIG

    timeout_seconds: float = Field(default=15.0, alias="timeoutSeconds", gt=0, le=300)
    #: Seconds to wait after failed attempt 1, 2, ...; the first attempt is immediate. When it runs
    #: out the delivery is dead (dead-lettered) until someone redelivers it.
    retry_schedule: list[float] = Field(
        default_factory=lambda: list(STANDARD_WEBHOOKS_SCHEDULE), alias="retrySchedule", max_length=100
    )
    #: Each delay is spread by up to ± this fraction, so failures that happened together do not
    #: retry together.
    jitter: float = Field(default=0.2, ge=0, lt=1)
    max_response_bytes: int = Field(default=20_000, alias="maxResponseBytes", ge=0, le=10_000_000)
    workers: int = Field(default=4, ge=1, le=256)
    # How long a claimed delivery stays a worker's before another process may take it over: the
    # time a crashed kiosk's deliveries wait. Default max(60 s, 6 x timeoutSeconds), long enough
    # for a full backlog of timeouts.
    lease_seconds: float | None = Field(default=None, alias="leaseSeconds", gt=0, le=3600)
    #: Signs generic WEBHOOK deliveries (Standard Webhooks and Port's headers).
    signing_secret: SecretRef | None = Field(default=None, alias="signingSecret")

    @field_validator("retry_schedule")
    @classmethod
    def _non_negative(cls, delays: list[float]) -> list[float]:
        if any(delay < 0 for delay in delays):
            raise ValueError("retry delays must be zero or more seconds")
        return delays
