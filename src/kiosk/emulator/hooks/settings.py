"""The service hooks' settings (``settings.hooks`` in the emulator's config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HooksSettings"]


class HooksSettings(BaseModel):
    """How deliveries are made where Azure leaves it open, and how fast its retry schedule runs.

    ``retryScale`` multiplies Azure's retry schedule (1, 2, 4 … 60 s for transient failures;
    20 min … 15 h on probation): 0.001 turns an hour into 3.6 s, for tests and demos.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, populate_by_name=True)

    retry_scale: float = Field(
        default=1.0,
        alias="retryScale",
        gt=0,
        le=1000,
        description="Multiplies Azure's retry and probation schedule (e.g. 0.001 in tests).",
    )
    attempt_timeout_seconds: float = Field(
        default=10.0,
        alias="attemptTimeoutSeconds",
        gt=0,
        le=300,
        description="How long one delivery attempt may take (connect to last byte); later it failed (transient).",
    )
    allow_http_to_loopback: bool = Field(
        default=True,
        alias="allowHttpToLoopback",
        description="Accept a basic-auth password with a plain-http URL when the target is this machine "
        "(127.0.0.0/8, ::1, localhost). Azure demands https; local receivers rarely have it.",
    )
    retain_deliveries: int = Field(
        default=10_000,
        alias="retainDeliveries",
        ge=10,
        le=1_000_000,
        description="Delivery attempts kept for GET /_emulator/hooks/deliveries (oldest dropped first).",
    )
    retain_notifications: int = Field(
        default=100,
        alias="retainNotifications",
        ge=1,
        le=100_000,
        description="Notifications kept per subscription (…/subscriptions/{id}/notifications).",
    )
