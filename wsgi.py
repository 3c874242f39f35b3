"""WSGI entry point: ``granian --interface wsgi wsgi:app`` or ``gunicorn wsgi:app``."""

from idp import create_app

app = create_app()
