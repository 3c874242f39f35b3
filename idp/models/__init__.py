"""Durable models, one module per aggregate."""

from .audit import AuditEvent
from .client import Client, InitialAccessToken
from .consent import Consent
from .contract import Contract
from .identity import LinkedIdentity
from .kv import KeyValue
from .line import ContractLine
from .mail import MailMessage
from .mfa import Factor, RecoveryCode, RememberedBrowser, SmsOutboxMessage, UsedTotpStep
from .ticket import Ticket
from .token import RefreshToken
from .user import User

__all__ = [
    "AuditEvent",
    "Client",
    "Consent",
    "Contract",
    "ContractLine",
    "Factor",
    "InitialAccessToken",
    "KeyValue",
    "LinkedIdentity",
    "MailMessage",
    "RecoveryCode",
    "RefreshToken",
    "RememberedBrowser",
    "SmsOutboxMessage",
    "Ticket",
    "UsedTotpStep",
    "User",
]
