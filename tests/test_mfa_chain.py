"""The chain's configuration (idp/mfa/chain.py): a misconfigured chain stops the provider
with every problem listed; every registered factor honours the plug-in contract."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from idp.i18n import MESSAGES
from idp.mfa import FACTORS
from idp.mfa.chain import open_chain
from idp.settings import SettingsError


def problems_of(settings, chain, factors=None) -> list[str]:
    changes = {"mfa_chain": tuple(chain)}
    if factors is not None:
        changes["mfa_factors"] = factors
    with pytest.raises(SettingsError) as raised:
        open_chain(settings.replace(**changes))
    return raised.value.problems


def test_an_unknown_factor_is_refused_and_the_known_ones_are_named(settings):
    [problem] = problems_of(settings, [{"when": "two_step", "any": ["sms", "fax"]}])
    assert problem.startswith("mfa.chain[0]: unknown factor 'fax' (one of ")
    for name in FACTORS:
        assert name in problem


def test_every_problem_of_the_chain_is_listed_at_once(settings):
    problems = problems_of(settings, [
        {"when": "two_step", "any": ["sms", "fax"]},
        {"when": "full_moon", "all": ["totp"]},
        {"when": "two_step", "any": ["totp"], "all": ["sms"]},
        {"when": "two_step", "any": []},
        {"when": "two_step", "any": ["email_otp", "email_otp"], "order": 1},
        {"when": "break_glass", "any": ["totp"], "enrol": "no"},
    ], factors={"email_otp": {"code_ttl": 0, "max_tries": "5", "colour": "red"},
                "carrier_pigeon": {}})
    assert problems == [
        "mfa.chain[0]: unknown factor 'fax' (one of sms, totp, recovery, email_otp, line)",
        "mfa.chain[1]: unknown condition 'full_moon' (one of always, line, two_step, "
        "break_glass)",
        "mfa.chain[2]: give exactly one of `any` (alternatives) or `all` (each required), "
        "not both or neither",
        "mfa.chain[3].any: a non-empty list of factor types",
        "mfa.chain[4]: unknown key(s) order",
        "mfa.chain[4].any: a factor is listed twice",
        "mfa.chain[5].enrol: true or false",
        "mfa.factors.carrier_pigeon: no such factor (one of sms, totp, recovery, email_otp, line)",
        "mfa.factors.email_otp: unknown key(s) colour",
        "mfa.factors.email_otp.max_tries: expected int, got '5'",
        "mfa.factors.email_otp: code_ttl must be positive",
    ]


def test_the_provider_does_not_start_with_a_broken_chain(settings):
    from idp import create_app

    broken = settings.replace(mfa_chain=({"when": "two_step", "any": ["fax"]},))
    with pytest.raises(SettingsError, match="unknown factor 'fax'"):
        create_app(broken)


def test_a_factor_outside_the_chain_is_not_opened(settings):
    chain = open_chain(settings.replace(
        mfa_chain=({"when": "two_step", "any": ["totp", "recovery"]},)))
    assert sorted(chain.steps) == ["recovery", "totp"]


# -- the plug-in contract (STYLE "Plug-ins"), over the whole registry ---------------------


@pytest.mark.parametrize("name", list(FACTORS))
def test_each_factor_honours_the_plug_in_contract(settings, name):
    module = FACTORS[name]
    config_cls = module.Config
    assert dataclasses.is_dataclass(config_cls)
    assert config_cls.__dataclass_params__.frozen
    # Each field is documented where it is declared, in the class or a base it shares.
    sources = [inspect.getsource(cls).splitlines() for cls in config_cls.__mro__
               if dataclasses.is_dataclass(cls)]
    for f in dataclasses.fields(config_cls):
        assert f.default is not dataclasses.MISSING, f"{name}.{f.name} needs a default"
        source, line = next((src, i) for src in sources for i, text in enumerate(src)
                            if text.strip().startswith(f"{f.name}:"))
        assert source[line - 1].strip().startswith("#:"), f"{name}.{f.name} is undocumented"

    step = module.open(config_cls(), settings)
    assert step.name == name
    assert isinstance(step.enrols, bool)
    assert set(MESSAGES[step.label]) >= {"ja", "en"}
    for method in ("usable", "begin", "verify"):
        assert callable(getattr(step, method))
