"""UI messages, Japanese first, English second (chosen by ``ui_locales`` / Accept-Language).

Core messages live here; each area of the product keeps its own catalogue in
``idp/messages/<area>.toml`` (``[key]`` with ``ja`` and ``en``), merged at import. A key
defined twice, or without its Japanese text, is an import error, not a wrong page.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from .web import language

MESSAGES: dict[str, dict[str, str]] = {
    "sign_in": {"ja": "ログイン", "en": "Sign in"},
    "email": {"ja": "メールアドレス", "en": "Email address"},
    "password": {"ja": "パスワード", "en": "Password"},
    "bad_credentials": {
        "ja": "メールアドレスまたはパスワードが正しくありません。",
        "en": "The email address or password is incorrect.",
    },
    "missing_fields": {
        "ja": "メールアドレスとパスワードを入力してください。",
        "en": "Enter your email address and password.",
    },
    "flow_expired": {
        "ja": "ログインの有効期限が切れました。もう一度アプリからやり直してください。",
        "en": "This sign-in has expired. Please start again from the app.",
    },
    "signed_in_as": {"ja": "ログイン中", "en": "Signed in as"},
    "consent_title": {"ja": "アクセスの許可", "en": "Allow access"},
    "consent_lead": {
        "ja": "{client} が次の情報へのアクセスを求めています。",
        "en": "{client} wants to access the following.",
    },
    "allow": {"ja": "許可する", "en": "Allow"},
    "deny": {"ja": "許可しない", "en": "Deny"},
    "scope_openid": {"ja": "あなたを識別する情報", "en": "Who you are"},
    "scope_profile": {"ja": "氏名などのプロフィール", "en": "Your name and profile"},
    "scope_email": {"ja": "メールアドレス", "en": "Your email address"},
    "scope_phone": {"ja": "電話番号", "en": "Your phone number"},
    "scope_offline_access": {
        "ja": "ログアウト後も継続するアクセス", "en": "Access while you are signed out",
    },
    "error_title": {"ja": "エラー", "en": "Error"},
    "error_lead": {
        "ja": "リクエストを処理できませんでした。",
        "en": "The request could not be processed.",
    },
    "logout_title": {"ja": "ログアウト", "en": "Sign out"},
    "logout_confirm": {"ja": "ログアウトしますか？", "en": "Do you want to sign out?"},
    "logout_button": {"ja": "ログアウトする", "en": "Sign out"},
    "logged_out": {"ja": "ログアウトしました。", "en": "You have signed out."},
    "signed_in": {"ja": "ログインしました。", "en": "You are signed in."},
    "consents_title": {"ja": "許可したアプリ", "en": "Apps you allowed"},
    "revoke": {"ja": "許可を取り消す", "en": "Revoke"},
    "csrf_failed": {
        "ja": "ページの有効期限が切れました。もう一度お試しください。",
        "en": "This page has expired. Please try again.",
    },
    "http_403": {
        "ja": "この操作を行う権限がありません。",
        "en": "You are not allowed to do this.",
    },
    "http_404": {"ja": "ページが見つかりません。", "en": "Page not found."},
    "http_405": {"ja": "この操作はできません。", "en": "This action is not allowed."},
    "no_consents": {"ja": "許可したアプリはありません。", "en": "You have not allowed any app."},
}


def _load_catalogues(directory: Path) -> None:
    for path in sorted(directory.glob("*.toml")):
        for key, texts in tomllib.loads(path.read_text("utf-8")).items():
            if key in MESSAGES:
                raise RuntimeError(f"message {key!r} in {path.name} is already defined")
            if "ja" not in texts:
                raise RuntimeError(f"message {key!r} in {path.name} has no ja text")
            MESSAGES[key] = dict(texts)


_load_catalogues(Path(__file__).with_name("messages"))


def t(key: str, lang: str | None = None, **values: str) -> str:
    """The message ``key`` in ``lang`` (default: the request's language)."""
    text = MESSAGES[key].get(lang or language()) or MESSAGES[key]["ja"]
    return text.format(**values) if values else text



def method_label(method: str, lang: str | None = None) -> str:
    """A login method's display name (``google`` -> "Googleアカウント"); a contract's AD
    connection ID reads as Active Directory, and a connector without a name as its id."""
    if method.startswith("adfs-"):
        method = "active_directory"
    key = f"login_method_name_{method}"
    return t(key, lang) if key in MESSAGES else method
