"""The gateway's settings as the chart configures them: ``GatewaySettings`` read from the
environment of a rendered gateway container."""

from __future__ import annotations

import os
from typing import Any

import pytest
from pydantic import BaseModel

from gateway.settings import GatewaySettings


def settings_names(model: type[BaseModel], prefix: str = "GATEWAY_") -> set[str]:
    """Every environment variable the gateway's settings read (nested with ``__``)."""
    names = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= settings_names(annotation, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def unread_names(env: dict[str, Any]) -> set[str]:
    """``GATEWAY_*`` variables of ``env`` that no setting reads."""
    return {n for n in env if n.startswith("GATEWAY_")} - settings_names(GatewaySettings)


def settings_from(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> GatewaySettings:
    """``GatewaySettings`` from exactly the container's ``GATEWAY_*`` variables (a Secret's
    value stands in as ``from-a-secret``, ``$(REDIS_PASSWORD)`` as ``pw``)."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    for name, item in env.items():
        if name.startswith("GATEWAY_"):
            value = item.get("value", "from-a-secret")
            monkeypatch.setenv(name, value.replace("$(REDIS_PASSWORD)", "pw"))
    return GatewaySettings()
