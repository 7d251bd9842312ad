"""Prometheus Alertmanager's webhook body as its Go source publishes it, for decoding ours.

Written from github.com/prometheus/alertmanager at 68fb2d5 (2026-08-22, after v0.34.0):
``notify/webhook/webhook.go`` ``Message`` (embeds ``*template.Data``, adds ``version``,
``groupKey``, ``truncatedAlerts``) and ``template/template.go`` ``Data`` and ``Alert``; the
documented body is in ``docs/configuration.md`` (``<webhook_config>``). Every field is
required (our body must carry each one Alertmanager sends) and nothing else is allowed
(``extra="forbid"``: a field Alertmanager does not have is a bug), with strict types: Go's
``string`` and ``KV`` (``map[string]string``) take strings only, ``uint64`` a non-negative
integer, ``time.Time`` an RFC 3339 string (``encoding/json`` decodes it with
``time.RFC3339``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _rfc3339(text: str) -> str:
    if not _RFC3339.match(text):
        raise ValueError(f"{text!r} is not RFC 3339 (Go's time.Time cannot decode it)")
    datetime.fromisoformat(text)  # and a real moment: no month 13
    return text


GoTime = Annotated[str, AfterValidator(_rfc3339)]
KV = dict[str, str]
Status = Literal["firing", "resolved"]


class _Struct(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Alert(_Struct):
    """``template.Alert``."""

    status: Status
    labels: KV
    annotations: KV
    startsAt: GoTime
    endsAt: GoTime
    generatorURL: str
    fingerprint: str


class Data(_Struct):
    """``template.Data``: what Alertmanager's templates see (``.GroupLabels`` ...)."""

    receiver: str
    status: Status
    alerts: list[Alert]
    notification_reason: str
    groupLabels: KV
    commonLabels: KV
    commonAnnotations: KV
    routeLabels: KV
    externalURL: str


class Message(Data):
    """``webhook.Message``: the body POSTed to a webhook receiver."""

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = Field(ge=0, le=2**64 - 1)
