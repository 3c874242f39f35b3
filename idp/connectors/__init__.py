"""Upstream identity providers (ARCHITECTURE "Connectors"): the registry and lookups.

``TYPES`` is the one registry of configurable connector types (config ``type`` ->
module), ``AD_TYPES`` of the per-contract Active Directory ones (the contract's
``ad_settings["type"]`` -> module). Each module exports a frozen ``Config`` and
``open(id, config, settings)``; AD modules also ``for_contract(contract, settings)``.
The rest of the provider sees only ``base.CallbackConnector`` / ``PasswordConnector``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from flask import current_app

from ..models import Contract
from ..plugins import config_of
from ..settings import Settings, SettingsError
from . import facebook, ldap, oidc, saml
from .base import CallbackConnector, PasswordConnector

TYPES: dict[str, ModuleType] = {
    "oidc": oidc,
    "facebook": facebook,
}
AD_TYPES: dict[str, ModuleType] = {
    "adfs": saml,
    "ldap": ldap,
}

#: The pseudo-connector id of the brand's "Active Directory" button: the contract's own
#: AD, addressed by its connection ID (``adfs-`` + 18).
ACTIVE_DIRECTORY = "active_directory"

Connector = CallbackConnector | PasswordConnector


def open_connectors(settings: Settings) -> dict[str, Any]:
    """The enabled connectors by id; ``SettingsError`` lists every problem at once.

    A ``[connectors.<id>]`` table with ``enabled = false`` (the shipped presets, until an
    operator adds credentials) is not opened: its button says "not configured".
    """
    problems: list[str] = []
    opened: dict[str, Any] = {}
    for cid, raw in settings.connectors.items():
        values = dict(raw)
        kind = values.pop("type")
        enabled = values.pop("enabled", True)
        if kind not in TYPES:
            problems.append(f"connectors.{cid}: unknown type {kind!r} "
                            f"(one of {', '.join(TYPES) or 'none'})")
            continue
        if enabled is not True:
            continue
        module = TYPES[kind]
        config = config_of(module.Config, values, f"connectors.{cid}", problems)
        if config is None:
            continue
        try:
            opened[cid] = module.open(cid, config, settings)
        except SettingsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    return opened


def get(connector_id: str) -> Any | None:
    """An enabled global connector by id."""
    return current_app.extensions["idp.connectors"].get(connector_id)


def for_contract(contract: Contract | None) -> Any | None:
    """The contract's own AD connector (ADFS or LDAP), or None when it has none."""
    if contract is None or not contract.connection_id or not contract.ad_settings:
        return None
    module = AD_TYPES.get(contract.ad_settings.get("type", ""))
    if module is None:
        return None
    try:
        return module.for_contract(contract, current_app.extensions["idp.settings"])
    except ValueError:
        return None  # settings this connector cannot use: as if AD were not set up


def is_callback(connector: Any) -> bool:
    return isinstance(connector, CallbackConnector)


def is_password(connector: Any) -> bool:
    return isinstance(connector, PasswordConnector)
