"""The privacy sweep: retention in short batches, then recordings deleted at Twilio."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from gateway.config import Settings
from gateway.privacy import delete_pending_recordings, expire_personal_data
from gateway.twilio_client import make_twilio_client

logger = logging.getLogger(__name__)

MAX_BATCHES = 50  # per sweep: the next sweep continues where this one stopped


def recording_deleter(settings: Settings) -> Any:
    """A function deleting one recording by its sid: Twilio's REST DELETE of the recording."""
    if settings.provider != "twilio":
        return lambda sid: logger.info("console provider: recording %s has nothing to delete", sid)
    account = str(settings.twilio_account_sid)
    client = make_twilio_client(
        account,
        str(settings.twilio_auth_token),
        settings.twilio_api_base_url,
        settings.twilio_timeout_seconds,
    )

    def delete(sid: str) -> None:
        try:
            client.api.v2010.accounts(account).recordings(sid).delete()
        except Exception as exc:
            if getattr(exc, "status", None) == 404:  # already gone: what we wanted
                return
            raise

    return delete


def run_privacy_sweep(database: Any, settings: Settings, now: datetime) -> str:
    """Expire personal data in batches, each its own short transaction, then delete recordings."""
    expired = 0
    if settings.personal_data_retention_days:
        for _ in range(MAX_BATCHES):
            with database.session_scope() as session:
                done = expire_personal_data(session, settings.personal_data_retention_days, now)
            expired += done
            if done == 0:
                break
    with database.session_scope() as session:
        deleted = delete_pending_recordings(session, recording_deleter(settings), now)
    summary = f"privacy sweep: {expired} contact(s) anonymised, {deleted} recording(s) deleted"
    if expired or deleted:
        logger.info(summary)
    return summary
