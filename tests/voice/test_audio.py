"""The prompt library: `audio check`, `audio build` (espeak-ng) and the prompts served to Twilio."""

from __future__ import annotations

import dataclasses
import os
import shutil
import wave
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from audio import library
from gateway.cli import main
from gateway.voice.twiml import play_url
from ivr_flows import load_flows

IN_CI = os.environ.get("CI") == "true"


def needs_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        if IN_CI:
            pytest.fail("espeak-ng is missing under CI=true (.ci/run installs it)")
        pytest.skip(
            "espeak-ng is not installed, so `audio build` cannot be tried here "
            "(`make system-deps` installs espeak-ng and sox as root; CI runs these tests)"
        )


def write_wav(path: Path, rate: int, channels: int = 1, frames: int = 800) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(channels)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x01\x00" * frames * channels)


def test_the_packaged_library_has_every_prompt_of_every_flow_and_language() -> None:
    result = CliRunner().invoke(main, ["audio", "check"])
    assert result.exit_code == 0, result.output
    assert "present and playable" in result.output


def test_check_names_what_is_missing_and_exits_non_zero(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["audio", "check", "--dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "ru/post_call/greeting: missing" in result.output
    assert "en/post_call_nps/confirm/10: missing" in result.output


def test_check_refuses_unplayable_and_outdated_prompts(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    shutil.copytree(library.PACKAGE_ROOT / "prompts", root / "prompts")
    shutil.copy(library.PACKAGE_ROOT / "manifest.json", root / "manifest.json")
    write_wav(root / "prompts/en/quick_csat/thanks.wav", 22050)
    write_wav(root / "prompts/ru/quick_csat/thanks.wav", 8000, channels=2)
    (root / "prompts/en/post_call/greeting.wav").write_bytes(b"ID3 not a wav")
    flows = list(load_flows().values())
    changed = dataclasses.replace(
        flows[0], prompts={**flows[0].prompts, "thanks": {"ru": "Спасибо!", "en": "Thanks!"}}
    )
    report = library.check(root, [changed, *flows[1:]])
    problems = "\n".join(report.problems)
    assert "en/quick_csat/thanks: 22050 Hz, expected 8000" in problems
    assert "ru/quick_csat/thanks: 2 channels, expected mono" in problems
    assert "en/post_call/greeting: not a WAV file" in problems
    assert f"en/{changed.key}/thanks: recorded from an older text" in problems


def test_build_renders_8khz_mono_prompts_that_pass_the_check(tmp_path: Path) -> None:
    needs_espeak()
    runner = CliRunner()
    result = runner.invoke(main, ["audio", "build", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    with wave.open(str(tmp_path / "prompts/ru/post_call_nps/confirm/10.wav"), "rb") as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 2)
        assert audio.getnframes() > 8000 * 0.5  # some speech, not an empty file
    assert runner.invoke(main, ["audio", "check", "--dir", str(tmp_path)]).exit_code == 0
    again = runner.invoke(main, ["audio", "build", "--dir", str(tmp_path)])
    assert again.exit_code == 0
    assert again.output.startswith("0 prompt(s) built")


def test_build_without_espeak_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library.shutil, "which", lambda _name: None)
    result = CliRunner().invoke(main, ["audio", "build", "--dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "apt-get install espeak-ng" in result.output


def test_the_python_resampler_makes_8khz_mono_when_sox_is_missing(tmp_path: Path) -> None:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    write_wav(source, 22050, channels=2, frames=22050)
    library.resample_wav(source, target, 8000)
    assert library.playable_problem(target) is None
    with wave.open(str(target), "rb") as audio:
        assert audio.getnframes() == 8000


def test_prompts_are_served_with_cache_headers(client: FlaskClient) -> None:
    with client.get("/audio/ru/post_call/greeting.wav") as response:
        assert response.status_code == 200
        assert response.mimetype in {"audio/wav", "audio/x-wav"}
        assert "max-age=86400" in response.headers["Cache-Control"]
        etag = response.headers["ETag"]
        assert response.data[:4] == b"RIFF"
    with client.get("/audio/ru/post_call/greeting.wav", headers={"If-None-Match": etag}) as again:
        assert again.status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/audio/ru/post_call/nothing.wav",
        "/audio/de/post_call/greeting.wav",
        "/audio/ru/../manifest.json",
        "/audio/ru/%2e%2e/%2e%2e/manifest.json",
        "/audio/ru/post_call/greeting.mp3",
    ],
)
def test_only_prompts_are_served(client: FlaskClient, path: str) -> None:
    with client.get(path) as response:
        assert response.status_code == 404


def test_audio_base_url_points_play_elsewhere(app: Flask) -> None:
    settings = dataclasses.replace(
        app.config["SETTINGS"], audio_base_url="https://cdn.example.com/prompts/"
    )
    assert play_url(settings, "en", "post_call/thanks") == (
        "https://cdn.example.com/prompts/en/post_call/thanks.wav"
    )
