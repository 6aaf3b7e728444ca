"""The bare Flask app ``bench/status.py`` compares ``GET /api/meta/status`` with:
``gunicorn -w 2 -c gunicorn.conf.py 'bench.hello_app:app'``."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello"
