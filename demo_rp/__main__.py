"""``python -m demo_rp``: serve the demo relying party on http://127.0.0.1:5001."""

from demo_rp import create_app

create_app().run(host="127.0.0.1", port=5001)
