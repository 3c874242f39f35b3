"""Settings: TOML + brand files + IDP_* overrides, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from idp.settings import DEFAULT_CONFIG, SettingsError, load_settings


def test_the_embedded_default_loads_with_both_brands():
    s = load_settings(DEFAULT_CONFIG, environ={})
    assert s.environment == "development"
    assert s.database_url.startswith("sqlite")
    assert s.redis_url == ""
    assert set(s.brands) == {"codec", "work"}
    assert s.brands["work"].name("ja") == "ワークストレージ"
    assert "ntt_east_business_id" in s.brands["work"].connectors
    assert "ntt_east_business_id" not in s.brands["codec"].connectors


@pytest.mark.parametrize(
    ("variable", "field", "value", "expected"),
    [
        ("IDP_ISSUER", "issuer", "https://id.example.jp/", "https://id.example.jp"),
        ("IDP_DATABASE_URL", "database_url", "postgresql+psycopg://db/idp",
         "postgresql+psycopg://db/idp"),
        ("IDP_REDIS_URL", "redis_url", "redis://cache:6379/1", "redis://cache:6379/1"),
        ("IDP_SMTP_URL", "smtp_url", "smtp://mail:25", "smtp://mail:25"),
        ("IDP_SECRET_KEY", "secret_key", "s" * 40, "s" * 40),
        ("IDP_KEYS_DIR", "keys_dir", "/srv/keys", Path("/srv/keys")),
        ("IDP_ACCESS_TOKEN_TTL", "access_token_ttl", "600", 600),
        ("IDP_FIRST_PARTY_CLIENTS", "first_party_clients", "a, b", ("a", "b")),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("IDP_") else "",
)
def test_environment_variables_override_the_file(variable, field, value, expected):
    s = load_settings(DEFAULT_CONFIG, environ={variable: value})
    assert getattr(s, field) == expected


def test_idp_config_names_the_file(tmp_path):
    (tmp_path / "brands").mkdir()
    (tmp_path / "brands" / "solo.toml").write_text(
        'internet_host = "a"\nline_host = "b"\n[names]\nja = "ソロ"\n', "utf-8")
    (tmp_path / "idp.toml").write_text(
        '[server]\nissuer = "http://localhost:9"\nenvironment = "test"\n'
        '[database]\nurl = "sqlite://"\n', "utf-8")
    s = load_settings(environ={"IDP_CONFIG": str(tmp_path / "idp.toml")})
    assert s.issuer == "http://localhost:9"
    assert list(s.brands) == ["solo"] and s.default_brand == "solo"


def test_production_refuses_to_start_and_lists_every_missing_setting():
    with pytest.raises(SettingsError) as err:
        load_settings(DEFAULT_CONFIG, environ={
            "IDP_ENVIRONMENT": "production", "IDP_ISSUER": "http://id.example.jp",
            "IDP_DATABASE_URL": "", "IDP_ACCESS_TOKEN_TTL": "soon",
        })
    text = str(err.value)
    for expected in ("https in production", "database_url is required",
                     "secret_key is required", "keys_kek is required",
                     "access_token_ttl: expected an integer"):
        assert expected in text
    assert len(err.value.problems) >= 5


def test_an_issuer_with_a_query_is_refused():
    with pytest.raises(SettingsError, match="without query"):
        load_settings(DEFAULT_CONFIG, environ={"IDP_ISSUER": "https://id.example.jp/?x=1"})


def test_a_relative_sqlite_path_is_the_projects_whatever_the_working_directory(monkeypatch,
                                                                               tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings(DEFAULT_CONFIG, environ={})
    assert s.database_url == f"sqlite:///{Path(DEFAULT_CONFIG).parent.parent}/instance/idp.sqlite"
