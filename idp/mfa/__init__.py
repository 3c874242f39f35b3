"""The step-up chain: second factors after primary sign-in (ARCHITECTURE "The step-up chain").

``FACTORS`` is the one registry: config ``type`` -> module. Each module exports a frozen
``Config`` (its ``[mfa.factors.<type>]`` settings, documented where declared) and
``open(config, settings)`` returning a ``base.Step``. Adding a factor is one module, one
line here and its name in ``[[mfa.chain]]``.
"""

from __future__ import annotations

from types import ModuleType

from . import email_otp, line, recovery, sms, totp

FACTORS: dict[str, ModuleType] = {
    "sms": sms,
    "totp": totp,
    "recovery": recovery,
    "email_otp": email_otp,
    "line": line,
}
