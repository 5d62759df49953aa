"""The shapes of the subscription API's answers, for the OpenAPI description. A subscription's names depend on
the caller's @context, so it is read and checked by ``subscriptions.payload``, not by these models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class KeyValue(BaseModel):
    key: str
    value: str


class Endpoint(BaseModel):
    uri: str = Field(..., description="http(s)://… (POSTed) or mqtt(s)://host:port/topic (published at QoS 1)")
    accept: str = Field("application/json", description="application/json (a Link header) or application/ld+json")
    receiverInfo: list[KeyValue] | None = None  # noqa: N815 - the standard's member names
    notifierInfo: list[KeyValue] | None = None  # noqa: N815


class NotificationParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    attributes: list[str] | None = None
    format: str = Field("normalized", description="normalized, concise, keyValues (simplified)")
    showChanges: bool = False  # noqa: N815
    sysAttrs: bool = False  # noqa: N815
    endpoint: Endpoint
    status: str | None = Field(None, description="ok or failed: how the last attempt went")
    timesSent: int = 0  # noqa: N815
    timesFailed: int = 0  # noqa: N815
    lastNotification: str | None = None  # noqa: N815
    lastSuccess: str | None = None  # noqa: N815
    lastFailure: str | None = None  # noqa: N815


class SubscriptionRead(BaseModel):
    """A subscription as GET answers it (CIM 009 §5.2.12)."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str = "Subscription"
    entities: list[dict[str, str]] | None = None
    watchedAttributes: list[str] | None = None  # noqa: N815
    notificationTrigger: list[str] | None = None  # noqa: N815
    q: str | None = None
    geoQ: dict[str, object] | None = None  # noqa: N815
    timeInterval: float | None = None  # noqa: N815
    throttling: float | None = None
    expiresAt: str | None = None  # noqa: N815
    isActive: bool = True  # noqa: N815
    status: str = Field(..., description="active, paused or expired")
    jsonldContext: str  # noqa: N815
    notification: NotificationParams
