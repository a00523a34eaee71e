"""The prompts served to Twilio: GET /audio/<lang>/<prompt id>.wav, cacheable."""

from __future__ import annotations

from flask import Blueprint, Response, abort, send_file
from werkzeug.security import safe_join

from audio.library import PROMPTS, audio_root
from gateway.config import current_settings

bp = Blueprint("audio", __name__, url_prefix="/audio")

# Prompts change only with a release (or `audio build`); the ETag lets Twilio revalidate.
MAX_AGE_SECONDS = 24 * 3600


@bp.get("/<lang>/<path:name>")
def prompt(lang: str, name: str) -> Response:
    if lang not in {"ru", "en"} or not name.endswith(".wav"):
        abort(404)
    root = audio_root(current_settings().audio_dir) / PROMPTS / lang
    path = safe_join(str(root), name)
    if path is None:
        abort(404)
    try:
        return send_file(
            path, mimetype="audio/wav", max_age=MAX_AGE_SECONDS, etag=True, conditional=True
        )
    except FileNotFoundError:
        abort(404)
