"""The prompt library: WAV files per language under `prompts/`, listed in `manifest.json`.

Layout under the audio root (the `audio` package, or AUDIO_DIR):

    manifest.json                       prompt id -> language -> {file, text}
    prompts/<lang>/<prompt id>.wav      8 kHz mono 16-bit PCM, what Twilio <Play>s best

`build` renders placeholders with espeak-ng (resampled by sox, or by a small resampler here
when sox is missing); `check` verifies that every prompt of every flow and language is there,
playable and recorded from the flow's current text.
"""

from __future__ import annotations

import array
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from audio.prompts import spoken_prompts
from ivr_flows import Flow

PACKAGE_ROOT = Path(__file__).parent
MANIFEST = "manifest.json"
PROMPTS = "prompts"
SAMPLE_RATE = 8000
ESPEAK_VOICES = {"ru": "ru", "en": "en-us"}
ESPEAK_WORDS_PER_MINUTE = "165"
TOOL_TIMEOUT_SECONDS = 60
# sox effects cutting leading and trailing silence: less dead air between prompts.
_TRIM_SILENCE = (
    "silence",
    "1",
    "0.02",
    "0.5%",
    "reverse",
    "silence",
    "1",
    "0.02",
    "0.5%",
    "reverse",
)


class AudioToolMissing(RuntimeError):
    """espeak-ng is not installed; the message says how to get it."""


def audio_root(configured: Path | None) -> Path:
    return configured if configured is not None else PACKAGE_ROOT


def prompt_file(root: Path, language: str, prompt_id: str) -> Path:
    return root / PROMPTS / language / f"{prompt_id}.wav"


def catalogue(flows: Iterable[Flow]) -> dict[str, dict[str, str]]:
    """Prompt id -> language -> text, for every spoken prompt of every flow."""
    found: dict[str, dict[str, str]] = {}
    for flow in flows:
        for language in flow.languages:
            for prompt in spoken_prompts(flow, language):
                found.setdefault(prompt.id, {})[language] = prompt.text
    return found


def load_manifest(root: Path) -> dict[str, dict[str, dict[str, str]]]:
    path = root / MANIFEST
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    prompts = data.get("prompts", {})
    return prompts if isinstance(prompts, dict) else {}


def write_manifest(root: Path, prompts: Mapping[str, Mapping[str, Mapping[str, str]]]) -> None:
    data = {
        "format": f"WAV, PCM signed 16-bit, {SAMPLE_RATE} Hz, mono",
        "prompts": {key: dict(sorted(prompts[key].items())) for key in sorted(prompts)},
    }
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    (root / MANIFEST).write_text(text, encoding="utf-8")


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def playable_problem(path: Path) -> str | None:
    """Why Twilio could not play `path` as the gateway's prompts are made, or None if it can."""
    if not path.is_file():
        return "missing"
    try:
        with wave.open(str(path), "rb") as audio:
            if audio.getcomptype() != "NONE":
                return f"compressed ({audio.getcomptype()})"
            if audio.getframerate() != SAMPLE_RATE:
                return f"{audio.getframerate()} Hz, expected {SAMPLE_RATE}"
            if audio.getnchannels() != 1:
                return f"{audio.getnchannels()} channels, expected mono"
            if audio.getsampwidth() != 2:
                return f"{audio.getsampwidth() * 8}-bit, expected 16-bit"
            if audio.getnframes() == 0:
                return "empty"
    except (wave.Error, EOFError) as exc:
        return f"not a WAV file ({exc})"
    return None


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check(root: Path, flows: Iterable[Flow]) -> CheckReport:
    """Every prompt of every flow and language: in the manifest, on disk, playable, current."""
    report = CheckReport()
    manifest = load_manifest(root)
    for prompt_id, texts in sorted(catalogue(flows).items()):
        for language, text in sorted(texts.items()):
            report.checked += 1
            where = f"{language}/{prompt_id}"
            entry = manifest.get(prompt_id, {}).get(language)
            path = prompt_file(root, language, prompt_id)
            problem = playable_problem(path)
            if problem is not None:
                report.problems.append(f"{where}: {problem} ({path.relative_to(root)})")
            elif entry is None:
                report.problems.append(f"{where}: not in {MANIFEST}")
            elif entry.get("sha256") != text_digest(text):
                report.problems.append(f"{where}: recorded from an older text; rebuild it")
    return report


@dataclass
class BuildReport:
    built: list[str] = field(default_factory=list)
    kept: int = 0
    resampler: str = "sox"


def build(
    root: Path, flows: Iterable[Flow], *, force: bool = False, only_language: str | None = None
) -> BuildReport:
    """Render every missing or outdated prompt with espeak-ng; keep the rest. Writes the manifest.

    Raises AudioToolMissing when espeak-ng is not installed.
    """
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise AudioToolMissing(
            "espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng sox; "
            "or `make system-deps`)"
        )
    sox = shutil.which("sox")
    report = BuildReport(resampler="sox" if sox else "python")
    manifest = load_manifest(root)
    wanted = catalogue(flows)
    with tempfile.TemporaryDirectory(prefix="prompts-") as scratch:
        raw = Path(scratch) / "espeak.wav"
        for prompt_id, texts in sorted(wanted.items()):
            for language, text in sorted(texts.items()):
                if only_language and language != only_language:
                    continue
                target = prompt_file(root, language, prompt_id)
                digest = text_digest(text)
                entry = manifest.get(prompt_id, {}).get(language)
                current = entry is not None and entry.get("sha256") == digest
                if current and not force and playable_problem(target) is None:
                    report.kept += 1
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                _run(
                    [
                        espeak,
                        "-v",
                        ESPEAK_VOICES.get(language, language),
                        "-s",
                        ESPEAK_WORDS_PER_MINUTE,
                        "-w",
                        str(raw),
                        "--",
                        text,
                    ]
                )
                if sox:
                    _run(
                        [
                            sox,
                            str(raw),
                            "-r",
                            str(SAMPLE_RATE),
                            "-c",
                            "1",
                            "-b",
                            "16",
                            "-e",
                            "signed-integer",
                            str(target),
                            *_TRIM_SILENCE,
                        ]
                    )
                else:
                    resample_wav(raw, target, SAMPLE_RATE)
                manifest.setdefault(prompt_id, {})[language] = {
                    "file": target.relative_to(root).as_posix(),
                    "sha256": digest,
                    "text": text,
                }
                report.built.append(f"{language}/{prompt_id}")
    # Entries of prompts no flow says any more are dropped; their files are left for review.
    pruned = {
        key: {lang: entry for lang, entry in langs.items() if lang in wanted[key]}
        for key, langs in manifest.items()
        if key in wanted
    }
    write_manifest(root, pruned)
    return report


def _run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=TOOL_TIMEOUT_SECONDS)
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{Path(command[0]).name} failed: {detail}") from exc


def resample_wav(source: Path, target: Path, rate: int) -> None:
    """Mono 16-bit PCM at `rate` from a 16-bit PCM WAV (linear interpolation; sox does better)."""
    with wave.open(str(source), "rb") as audio:
        if audio.getsampwidth() != 2:
            raise ValueError(f"{source.name}: only 16-bit PCM can be resampled here")
        channels, source_rate = audio.getnchannels(), audio.getframerate()
        frames = array.array("h", audio.readframes(audio.getnframes()))
    if sys.byteorder == "big":
        frames.byteswap()
    if channels > 1:
        frames = array.array(
            "h",
            (sum(frames[i : i + channels]) // channels for i in range(0, len(frames), channels)),
        )
    count = int(len(frames) * rate / source_rate) if frames else 0
    out = array.array("h", bytes(2 * count))
    step = source_rate / rate
    last = len(frames) - 1
    for index in range(count):
        position = index * step
        left = int(position)
        right = min(left + 1, last)
        fraction = position - left
        out[index] = int(frames[left] + (frames[right] - frames[left]) * fraction)
    if sys.byteorder == "big":
        out.byteswap()
    with wave.open(str(target), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(out.tobytes())
