"""The storage web app's stand-in: a relying party built with Authlib's Flask client.

This is the example partner developers copy. It discovers the provider, sends the user
through the authorization code flow with PKCE, verifies the ID token against the published
JWKS (Authlib checks signature, iss, aud, exp, nonce) and shows the verified claims.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, render_template_string, session, url_for

CONFIG = Path(
    os.environ.get("DEMO_RP_CONFIG", Path(__file__).parent.parent / "instance" / "demo_rp.json")
)

PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>Storage web app (demo RP)</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto}
pre{background:#f4f4f4;padding:1rem;overflow:auto}button{font-size:1rem;padding:.5rem 1rem}</style>
</head><body>
<h1>Storage web app <small>(demo relying party)</small></h1>
{% if claims %}
<p>Signed in. Verified ID token claims:</p>
<pre>{{ claims }}</pre>
<p>UserInfo:</p><pre>{{ userinfo }}</pre>
<form action="{{ url_for('logout') }}" method="post"><button>Sign out</button></form>
{% else %}
<form action="{{ url_for('login') }}" method="post"><button>Sign in</button></form>
{% endif %}
</body></html>"""


def create_app(config_path: Path = CONFIG) -> Flask:
    conf = json.loads(config_path.read_text())
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.token_urlsafe(32),
        # Both apps run on 127.0.0.1 in the demo; cookies ignore ports, so names must differ.
        SESSION_COOKIE_NAME="demo_rp_session",
        SESSION_COOKIE_SAMESITE="Lax",
    )
    oauth = OAuth(app)
    oauth.register(
        "idp",
        client_id=conf["client_id"],
        client_secret=conf["client_secret"],
        server_metadata_url=conf["issuer"] + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email offline_access",
                       "code_challenge_method": "S256"},
    )

    @app.get("/")
    def index():
        claims = session.get("claims")
        return render_template_string(
            PAGE,
            claims=json.dumps(claims, ensure_ascii=False, indent=2) if claims else None,
            userinfo=json.dumps(session.get("userinfo"), ensure_ascii=False, indent=2),
        )

    @app.post("/login")
    def login():
        return oauth.idp.authorize_redirect(url_for("callback", _external=True))

    @app.get("/callback")
    def callback():
        token = oauth.idp.authorize_access_token()  # verifies the ID token against JWKS
        session["claims"] = dict(token["userinfo"])
        session["id_token"] = token["id_token"]
        session["userinfo"] = dict(oauth.idp.userinfo(token=token))
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout():
        id_token = session.pop("id_token", None)
        session.clear()
        end = oauth.idp.load_server_metadata()["end_session_endpoint"]
        params = {"post_logout_redirect_uri": url_for("index", _external=True),
                  "state": secrets.token_urlsafe(8)}
        if id_token:
            params["id_token_hint"] = id_token
        return redirect(end + "?" + urlencode(params))

    return app
