"""The contract console's line IDs (回線認証設定): owners and admins list, register and
remove the contract's fibre line IDs, see the access route, and are warned before a
line-only contract loses its last line (SPEC §7, §10)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from idp.models import ContractLine
from tests.concurrency import race
from tests.console_helpers import (
    HOSTS,
    error_of,
    fetch,
    fetch_all,
    headers_for,
    hidden,
    notices_of,
    sign_in,
    submit,
    text_of,
    update,
)
from tests.helpers import csrf_from
from tests.settings_helpers import audit_actions, update_contract

CODEC = HOSTS["codec"]
PAGE = "/admin/lines"
EAST = "CAF1234567890"
WEST = "COP1234ABCD"
#: 2026-01-01 00:00 UTC, shown as 09:00 in Japan.
NEW_YEAR = 1767225600


def console_of(app, person):
    http = app.test_client()
    sign_in(http, email=person.email)
    return http


def register(http, line_id: str, *, ui: str = "ja"):
    return submit(http, PAGE, PAGE, ui=ui, line_id=line_id)


def remove(http, line_id: str, *, ui: str = "ja", **extra: str):
    return submit(http, PAGE, f"{PAGE}/{line_id}/remove", ui=ui, **extra)


def stored(app, contract_id: str) -> list[str]:
    return sorted(r.line_id for r in fetch_all(app, ContractLine, contract_id=contract_id))


def line_events(app, contract_id: str) -> list[tuple[str, str, dict]]:
    """The contract's audit events about lines (sign-ins are audited too)."""
    return [e for e in audit_actions(app, contract_id) if e[0].startswith("contract.line_")]


def listed(response) -> list[str]:
    return re.findall(r'<tr data-line-id="([^"]+)"', response.get_data(as_text=True))


def typed_value(response) -> str:
    match = re.search(r'<input type="text" name="line_id" value="([^"]*)"', text_of(response))
    assert match, text_of(response)[:1500]
    return match.group(1)


# -- who may use it ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owner_and_admin_register_list_and_remove_line_ids(app, basic, role):
    person = basic.by_role(role)
    http = console_of(app, person)
    page = http.get(PAGE, base_url=CODEC)
    assert page.status_code == 200 and listed(page) == []
    assert "回線番号登録" in text_of(page) and "CAFで始まる英数13桁" in text_of(page)

    added = register(http, EAST)
    assert added.status_code == 302 and added.headers["Location"].endswith(PAGE)
    page = http.get(PAGE, base_url=CODEC)
    assert notices_of(page) == [f"回線番号 {EAST} を登録しました。"]
    assert listed(page) == [EAST]
    assert person.email in text_of(page)  # registered by whom
    assert stored(app, basic.contract_id) == [EAST]

    removed = remove(http, EAST)
    assert removed.status_code == 302 and removed.headers["Location"].endswith(PAGE)
    page = http.get(PAGE, base_url=CODEC)
    assert notices_of(page) == [f"回線番号 {EAST} を削除しました。"]
    assert listed(page) == [] and "登録されている回線番号はありません。" in text_of(page)
    assert stored(app, basic.contract_id) == []


def test_the_console_menu_links_to_the_line_page(app, basic):
    page = console_of(app, basic.admin).get("/admin/users", base_url=CODEC)
    assert f'href="{PAGE}">回線認証設定</a>' in page.get_data(as_text=True)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_plain_user_is_refused_with_403_and_changes_nothing(app, basic, lang):
    with app.app_context():
        from idp import lines
        from idp.db import db
        from idp.models import Contract, User

        lines.register(db.session.get(Contract, basic.contract_id), EAST,
                       actor=db.session.get(User, basic.owner.id))
        db.session.commit()
    http = console_of(app, basic.user)
    page = http.get(PAGE, base_url=CODEC, headers=headers_for(lang))
    assert page.status_code == 403
    assert ("権限がありません" if lang == "ja" else "not allowed") in text_of(page)
    token = csrf_from(http.get("/login", base_url=CODEC).get_data(as_text=True))
    assert http.post(PAGE, base_url=CODEC, data={"csrf_token": token,
                                                 "line_id": WEST}).status_code == 403
    assert http.post(f"{PAGE}/{EAST}/remove", base_url=CODEC, data={
        "csrf_token": token, "confirmed": "yes"}).status_code == 403
    assert stored(app, basic.contract_id) == [EAST]


def test_an_action_without_a_session_signs_in_and_comes_back_to_the_line_page(app, client,
                                                                               basic):
    assert urlsplit(client.get(PAGE, base_url=CODEC).headers["Location"]).path == "/login"
    token = csrf_from(client.get("/login", base_url=CODEC).get_data(as_text=True))
    response = client.post(PAGE, base_url=CODEC, data={"csrf_token": token, "line_id": EAST})
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["Location"]).query)["next"] == [PAGE]
    assert stored(app, basic.contract_id) == []


def test_a_form_without_its_csrf_token_registers_nothing(app, basic):
    http = console_of(app, basic.owner)
    response = http.post(PAGE, base_url=CODEC, data={"line_id": EAST})
    assert response.status_code == 400
    assert stored(app, basic.contract_id) == []


# -- validation --------------------------------------------------------------------------

MALFORMED = [
    # (typed, message key fragment in ja, in en)
    ("CAB1234567890", "回線番号が正しくありません", "This line ID is not valid"),
    ("CAF123456789", "回線番号が正しくありません", "This line ID is not valid"),
    ("CAF12345678901", "回線番号が正しくありません", "This line ID is not valid"),
    ("COP1234567", "回線番号が正しくありません", "This line ID is not valid"),
    ("COP123456789", "回線番号が正しくありません", "This line ID is not valid"),
    ("CAF12345!7890", "回線番号が正しくありません", "This line ID is not valid"),
    ("CAF1234_67890", "回線番号が正しくありません", "This line ID is not valid"),
    ("CAF" + "1" * 60, "回線番号が正しくありません", "This line ID is not valid"),
    ("", "回線番号を入力してください。", "Enter the line ID."),
    ("   ", "回線番号を入力してください。", "Enter the line ID."),
]


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize(("typed", "ja", "en"), MALFORMED,
                         ids=["wrong-prefix", "caf-too-short", "caf-too-long", "cop-too-short",
                              "cop-too-long", "symbol", "underscore", "far-too-long", "empty",
                              "spaces-only"])
def test_a_malformed_line_id_is_refused_in_the_users_language(app, basic, lang, typed, ja, en):
    http = console_of(app, basic.admin)
    response = register(http, typed, ui=lang)
    assert response.status_code == 400
    assert (ja if lang == "ja" else en) in error_of(response)
    assert typed_value(response) == typed  # what was typed stays in the form
    assert stored(app, basic.contract_id) == []
    assert line_events(app, basic.contract_id) == []


@pytest.mark.parametrize(("typed", "expected"), [
    ("caf1234567890", EAST),
    ("ＣＡＦ１２３４５６７８９０", EAST),
    ("CAF-1234-5678-90", EAST),
    (" caf 1234 5678 90 ", EAST),
    ("cop1234abcd", WEST),
    ("ＣＯＰ－１２３４－ａｂｃｄ", WEST),
], ids=["lower-case", "full-width", "hyphenated", "spaced", "cop-lower-case",
        "cop-full-width-hyphenated"])
def test_loosely_typed_line_ids_are_stored_upper_case(app, basic, typed, expected):
    http = console_of(app, basic.owner)
    assert register(http, typed).status_code == 302
    assert stored(app, basic.contract_id) == [expected]
    assert listed(http.get(PAGE, base_url=CODEC)) == [expected]


def test_a_line_id_already_registered_is_refused(app, basic):
    http = console_of(app, basic.owner)
    assert register(http, EAST).status_code == 302
    again = register(http, "caf-1234567890", ui="en")
    assert again.status_code == 400
    assert error_of(again) == "This line ID is already registered."
    assert typed_value(again) == "caf-1234567890"
    assert register(http, EAST).status_code == 400
    assert error_of(register(http, EAST)) == "この回線番号はすでに登録されています。"
    assert stored(app, basic.contract_id) == [EAST]
    assert [a for a, _, _ in line_events(app, basic.contract_id)] == [
        "contract.line_registered"]


# -- tenant isolation --------------------------------------------------------------------


def test_another_contracts_line_is_neither_listed_nor_removable(app, basic, trial):
    theirs = console_of(app, trial.owner)
    assert register(theirs, WEST).status_code == 302
    assert register(theirs, EAST).status_code == 302
    ours = console_of(app, basic.admin)
    assert register(ours, EAST).status_code == 302  # a line may serve two contracts

    page = ours.get(PAGE, base_url=CODEC)
    assert listed(page) == [EAST] and WEST not in text_of(page)
    assert trial.owner.email not in text_of(page)
    assert remove(ours, WEST, confirmed="yes").status_code == 404
    assert remove(ours, "COP0000AAAA", confirmed="yes").status_code == 404
    assert remove(ours, "not-a-line", confirmed="yes").status_code == 404

    assert remove(ours, EAST).status_code == 302
    assert stored(app, basic.contract_id) == []
    assert stored(app, trial.contract_id) == [EAST, WEST]
    assert [a for a, _, _ in line_events(app, trial.contract_id)] == [
        "contract.line_registered", "contract.line_registered"]


# -- audit -------------------------------------------------------------------------------


def test_registering_and_removing_are_audited_with_the_actor(app, basic):
    registrar = console_of(app, basic.admin)
    assert register(registrar, "cop1234abcd").status_code == 302
    remover = console_of(app, basic.owner)
    assert remove(remover, WEST).status_code == 302
    assert line_events(app, basic.contract_id) == [
        ("contract.line_registered", f"user:{basic.admin.id}", {"line_id": WEST}),
        ("contract.line_removed", f"user:{basic.owner.id}", {"line_id": WEST}),
    ]


# -- what the page shows ------------------------------------------------------------------


def test_the_list_shows_when_by_whom_and_the_west_japan_consent_in_japan_time(app, basic):
    http = console_of(app, basic.admin)
    register(http, EAST)
    register(http, WEST)
    row = fetch(app, ContractLine, contract_id=basic.contract_id, line_id=WEST)
    update(app, ContractLine, row.id, created_at=NEW_YEAR, notify_consent_at=NEW_YEAR + 3600)

    page = http.get(PAGE, base_url=CODEC)
    words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text_of(page)))
    assert f"{WEST} 2026-01-01 09:00 {basic.admin.email} 同意済み（2026-01-01 10:00）" in words
    assert re.search(rf"{EAST} \S+ \S+ {re.escape(basic.admin.email)} 未同意", words)
    english = http.get(PAGE, base_url=CODEC, headers=headers_for("en"))
    assert "Agreed (2026-01-01 10:00)" in text_of(english) and "Not yet" in text_of(english)


def test_the_access_route_is_shown_read_only_with_a_settings_link_for_the_owner(app, basic):
    owner_page = console_of(app, basic.owner).get(PAGE, base_url=CODEC)
    assert re.search(r'data-route="line\+internet"><strong>回線認証\+インターネット</strong>',
                     text_of(owner_page))
    assert 'href="/settings/access-route"' in owner_page.get_data(as_text=True)

    admin = console_of(app, basic.admin)  # before line-only refuses internet sign-ins
    update_contract(app, basic.contract_id, access_route="line-only")
    admin_page = admin.get(PAGE, base_url=CODEC, headers=headers_for("en"))
    assert re.search(r'data-route="line-only"><strong>Line authentication only</strong>',
                     text_of(admin_page))
    assert "/settings/access-route" not in admin_page.get_data(as_text=True)
    assert "The contract holder changes the access route" in text_of(admin_page)
    for page in (owner_page, admin_page):
        assert 'name="route"' not in page.get_data(as_text=True)


# -- the last line of a line-only contract -----------------------------------------------


def test_removing_the_last_line_of_a_line_only_contract_warns_first(app, basic):
    http = console_of(app, basic.admin)
    register(http, EAST)
    update_contract(app, basic.contract_id, access_route="line-only")

    first = remove(http, EAST)
    assert first.status_code == 200
    page = text_of(first)
    assert "回線認証のみ" in page and "どなたもログインできなくなります" in page
    assert "契約者様が認証・契約情報変更メニューにログイン" in page
    assert hidden(first.get_data(as_text=True), "confirmed") == "yes"
    assert stored(app, basic.contract_id) == [EAST]
    assert line_events(app, basic.contract_id)[-1][0] == "contract.line_registered"

    confirmed = remove(http, EAST, confirmed="yes")
    assert confirmed.status_code == 302
    assert stored(app, basic.contract_id) == []
    assert line_events(app, basic.contract_id)[-1][:2] == ("contract.line_removed",
                                                            f"user:{basic.admin.id}")
    after = http.get(PAGE, base_url=CODEC)
    assert "回線番号が登録されていません" in text_of(after)


def test_the_last_line_warning_speaks_english(app, basic):
    http = console_of(app, basic.owner)
    register(http, WEST)
    update_contract(app, basic.contract_id, access_route="line-only")
    first = remove(http, WEST, ui="en")
    assert first.status_code == 200
    assert "Removing the last line ID leaves no registered line" in text_of(first)
    assert "switch the access route back" in text_of(first)
    assert stored(app, basic.contract_id) == [WEST]


def _browsers(app, *people):
    """Signed-in consoles with their CSRF tokens, ready to post at the same moment."""
    out = []
    for person in people:
        http = console_of(app, person)
        out.append((http, csrf_from(http.get(PAGE, base_url=CODEC).get_data(as_text=True))))
    return out


def test_two_admins_removing_the_last_two_lines_at_once_cannot_both_skip_the_warning(app,
                                                                                      basic):
    (owner, owner_token), (admin, admin_token) = _browsers(app, basic.owner, basic.admin)
    register(owner, EAST)
    register(owner, WEST)
    update_contract(app, basic.contract_id, access_route="line-only")

    def post(http, token: str, line_id: str):
        return http.post(f"{PAGE}/{line_id}/remove", base_url=CODEC,
                         data={"csrf_token": token})

    results = race(lambda: post(owner, owner_token, EAST),
                   lambda: post(admin, admin_token, WEST))
    assert sorted(r.status_code for r in results) == [200, 302]  # one is asked to confirm
    assert len(stored(app, basic.contract_id)) == 1


def test_the_same_line_id_registered_twice_at_once_is_stored_once(app, basic):
    browsers = _browsers(app, basic.owner, basic.admin)

    def post(http, token: str):
        return http.post(PAGE, base_url=CODEC, data={"csrf_token": token, "line_id": EAST})

    results = race(*[lambda b=b: post(*b) for b in browsers])
    assert sorted(r.status_code for r in results) == [302, 400]
    assert stored(app, basic.contract_id) == [EAST]
    assert len(line_events(app, basic.contract_id)) == 1


def test_lines_other_than_the_last_and_any_line_under_line_and_internet_go_at_once(app,
                                                                                   basic):
    http = console_of(app, basic.admin)
    register(http, EAST)
    register(http, WEST)
    update_contract(app, basic.contract_id, access_route="line-only")
    assert remove(http, EAST).status_code == 302  # one line is left
    assert stored(app, basic.contract_id) == [WEST]

    update_contract(app, basic.contract_id, access_route="line+internet")
    assert remove(http, WEST).status_code == 302  # the internet route remains
    assert stored(app, basic.contract_id) == []
