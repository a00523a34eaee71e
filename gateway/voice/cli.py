"""Command-line commands of this domain, added to `survey-gateway` by gateway.cli.

`survey-gateway simulate call`: a caller in the terminal. It drives a RUNNING gateway through
the survey exactly as Twilio would (form posts signed with the auth token), prints what the
caller would hear, and sends the keys typed (or given with --keys).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import click
import requests

from gateway.simulation import DEMO_ACCOUNT_SID, SimulationError, post_signed

MAX_STEPS = 200
DEFAULT_CALLER = "+79990000000"
DEFAULT_HOTLINE = "+74950000000"
_PLAYED = re.compile(r"/(?P<lang>[a-z]{2})/(?P<prompt>.+)\.wav$")


@dataclass
class SimulatedCall:
    """One simulated call: Twilio's side of the conversation with the gateway."""

    base_url: str
    auth_token: str
    caller: str
    called: str
    direction: str = "inbound"
    account_sid: str = DEMO_ACCOUNT_SID
    call_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    prompt_texts: Callable[[str, str], str | None] = lambda _lang, _prompt: None
    out: Callable[[str], None] = click.echo
    http: requests.Session = field(default_factory=requests.Session)

    def params(self, status: str = "in-progress") -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": status,
            "Direction": self.direction,
            "From": self.caller,
            "Caller": self.caller,
            "To": self.called,
            "Called": self.called,
        }

    def post(
        self, url: str, extra: dict[str, str] | None = None, status: str = "in-progress"
    ) -> ET.Element:
        return post_signed(
            self.http, url, {**self.params(status), **(extra or {})}, self.auth_token
        )

    def describe(self, element: ET.Element) -> str:
        if element.tag == "Say":
            return (element.text or "").strip()
        url = (element.text or "").strip()
        match = _PLAYED.search(urlsplit(url).path)
        text = match and self.prompt_texts(match["lang"], match["prompt"])
        return f"{text}  [{match['prompt'] if match else url}]" if text else f"[audio {url}]"

    def hear(self, elements: Iterator[ET.Element]) -> None:
        for element in elements:
            if element.tag in {"Say", "Play"}:
                self.out(f"  gateway: {self.describe(element)}")

    def run(
        self, first_url: str, first_extra: dict[str, str], next_input: Callable[[str], str | None]
    ) -> str:
        """Walk the survey; returns how the call ended (completed or hung up)."""
        document = self.post(first_url, first_extra)
        for _ in range(MAX_STEPS):
            following = self._follow(document, next_input)
            if following is None:
                return self.end("completed")
            if following == ("hangup", {}):
                return self.end("hangup")
            url, extra = following
            document = self.post(url, extra)
        raise SimulationError(f"no end after {MAX_STEPS} steps")

    def _follow(
        self, document: ET.Element, next_input: Callable[[str], str | None]
    ) -> tuple[str, dict[str, str]] | None:
        """Play one TwiML document; the next request to make, or None when the call ends."""
        verbs = list(document)
        for index, verb in enumerate(verbs):
            if verb.tag in {"Say", "Play"}:
                self.hear(iter([verb]))
            elif verb.tag == "Gather":
                self.hear(verb.iter())
                keys = next_input("keys")
                if keys is None:
                    return ("hangup", {})
                self.out(f"  caller:  {keys or '(no input)'}")
                return verb.attrib["action"], {"Digits": keys} if keys else {}
            elif verb.tag == "Record":
                spoken = next_input("comment")
                if spoken is None:
                    return ("hangup", {})
                if not spoken:
                    self.out("  caller:  (says nothing)")
                    continue  # nothing recorded: Twilio goes on to the next verb
                self.out(f"  caller:  (records) {spoken}")
                seconds = max(1, min(60, len(spoken.split())))
                recording = (
                    f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}"
                    f"/Recordings/RE{uuid.uuid4().hex}"
                )
                return verb.attrib["action"], {
                    "RecordingUrl": recording,
                    "RecordingDuration": str(seconds),
                    "RecordingSid": recording.rsplit("/", 1)[-1],
                    "Digits": "#",
                }
            elif verb.tag == "Redirect":
                return (verb.text or "").strip(), {}
            elif verb.tag == "Hangup":
                return None
            else:
                self.out(f"  (ignored <{verb.tag}> at {index})")
        return None  # the end of the document hangs up, as on Twilio

    def end(self, how: str) -> str:
        self.post(f"{self.base_url}/voice/status", {"CallDuration": "60"}, status="completed")
        self.out("  (call ended: " + ("caller hung up" if how == "hangup" else "completed") + ")")
        return how


def _prompt_lookup(audio_dir: Path | None) -> Callable[[str, str], str | None]:
    from audio.library import audio_root, load_manifest

    manifest = load_manifest(audio_root(audio_dir))

    def lookup(language: str, prompt_id: str) -> str | None:
        return manifest.get(prompt_id, {}).get(language, {}).get("text")

    return lookup


def _input_source(keys: str | None) -> Callable[[str], str | None]:
    """Keys from --keys (comma-separated; empty = no input), else typed at the terminal."""
    if keys is not None:
        queue = [item.strip() for item in keys.split(",")]

        def scripted(kind: str) -> str | None:
            if not queue:
                return ""  # out of keys: silence, until the survey gives up
            item = queue.pop(0)
            return None if item.lower() == "hangup" else item

        return scripted

    def typed(kind: str) -> str | None:
        hint = (
            "speak a comment (text), empty = silence"
            if kind == "comment"
            else "press keys, empty = no input"
        )
        try:
            line = click.prompt(f"  {hint}; 'hangup' to hang up", default="", show_default=False)
        except (click.Abort, EOFError):
            return None
        return None if line.strip().lower() == "hangup" else line.strip()

    return typed


def register(main: click.Group) -> None:
    """Add this domain's commands to the groups of `main`."""
    group = main.commands["simulate"]
    if not isinstance(group, click.Group):
        raise TypeError("'simulate' must be a command group")

    @group.command("call")
    @click.option(
        "--operator", default=None, help="the operator's external id (required unless --session)"
    )
    @click.option(
        "--from", "caller", default=DEFAULT_CALLER, show_default=True, help="the caller's number"
    )
    @click.option(
        "--url",
        "base_url",
        default=None,
        help="the gateway's PUBLIC_BASE_URL (default: from the environment, else "
        "http://127.0.0.1:$PORT)",
    )
    @click.option("--flow", default=None, help="survey flow (default post_call)")
    @click.option(
        "--lang",
        type=click.Choice(["ru", "en"]),
        default=None,
        help="language when the customer has none",
    )
    @click.option(
        "--interaction",
        default=None,
        help="the call's external id (default: the simulated CallSid)",
    )
    @click.option(
        "--auth-token",
        default=None,
        help="token to sign with (default: "
        "TWILIO_AUTH_TOKEN, else the development token under var/)",
    )
    @click.option(
        "--keys",
        default=None,
        help="answers without a terminal: comma-separated "
        "keys per question, empty for no input, 'hangup' to hang up, e.g. 5,4,3,5,4",
    )
    @click.option(
        "--session",
        "session_id",
        type=int,
        default=None,
        help="answer the call-back call of this survey session (console provider)",
    )
    def simulate_call(
        operator: str | None,
        caller: str,
        base_url: str | None,
        flow: str | None,
        lang: str | None,
        interaction: str | None,
        auth_token: str | None,
        keys: str | None,
        session_id: int | None,
    ) -> None:
        """Call the survey as a customer would: hear the prompts, press keys."""
        from gateway.config import ConfigError, load_settings

        try:
            settings = load_settings()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        base = (base_url or settings.public_base_url).rstrip("/")
        token = auth_token or settings.webhook_auth_token()
        hotline = settings.twilio_from_number or DEFAULT_HOTLINE
        call = SimulatedCall(
            base_url=base,
            auth_token=token,
            caller=caller,
            called=hotline,
            account_sid=settings.twilio_account_sid or DEMO_ACCOUNT_SID,
            prompt_texts=_prompt_lookup(settings.audio_dir),
        )
        query: dict[str, Any] = {}
        extra: dict[str, str]
        if session_id is not None:
            call.call_sid, call.called = _pending_call(session_id)
            call.caller, call.direction = hotline, "outbound-api"
            query = {"session": session_id}
            extra = {"AnsweredBy": "human"}
        else:
            if not operator:
                raise click.UsageError("--operator is required (or --session for a call-back)")
            query = {"operator": operator}
            extra = {
                "DialCallStatus": "completed",
                "DialCallSid": "CA" + uuid.uuid4().hex,
                "DialCallDuration": "95",
                "DialBridged": "true",
            }
        if interaction:
            query["interaction"] = interaction
        if flow:
            _check_ivr_flow(flow)
            query["flow"] = flow
        if lang:
            query["lang"] = lang
        click.echo(f"calling {base}/voice/survey as {caller} (CallSid {call.call_sid})")
        with call.http:
            call.run(f"{base}/voice/survey?{urlencode(query)}", extra, _input_source(keys))
        if session_id is None:
            click.echo(f"interaction: channel=call external_id={interaction or call.call_sid}")


def _check_ivr_flow(name: str) -> None:
    """Refuse a flow the gateway would not run on a call (it would fall back to post_call)."""
    from gateway.config import ConfigError, load_settings
    from ivr_flows import FlowError, load_flows

    try:
        flows = load_flows(load_settings().flows_dir)
    except (ConfigError, FlowError) as exc:
        raise click.ClickException(str(exc)) from exc
    known = sorted(key for key, found in flows.items() if "ivr" in found.channels)
    if name not in known:
        raise click.BadParameter(
            f"no IVR flow {name!r}; the flows a call can run: {', '.join(known)}",
            param_hint="'--flow'",
        )


def _pending_call(session_id: int) -> tuple[str, str]:
    """The CallSid and number of a call-back survey's current (console) call."""
    from gateway.cli_context import app_session
    from gateway.models import SurveySession, SurveyStatus

    with app_session() as (_app, session):
        survey = session.get(SurveySession, session_id)
        if survey is None or survey.status is not SurveyStatus.SENDING or not survey.provider_id:
            raise click.ClickException(
                f"survey session {session_id} has no call waiting to be answered"
            )
        phone = survey.customer.phone if survey.customer else None
        return survey.provider_id, phone or DEFAULT_CALLER
