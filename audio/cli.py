"""Command-line commands of this domain, added to `survey-gateway` by gateway.cli."""

from __future__ import annotations

from pathlib import Path

import click

from audio.library import AudioToolMissing, audio_root, build, check
from ivr_flows import FlowError, load_flows


def _root(directory: Path | None) -> Path:
    if directory is not None:
        return directory
    from gateway.config import ConfigError, load_settings

    try:
        return audio_root(load_settings().audio_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _flows() -> list:  # type: ignore[type-arg]
    """The flows the gateway runs (FLOWS_DIR)."""
    from gateway.config import ConfigError, load_settings

    try:
        return list(load_flows(load_settings().flows_dir).values())
    except (ConfigError, FlowError) as exc:
        raise click.ClickException(str(exc)) from exc


def register(main: click.Group) -> None:
    """Add this domain's commands to the groups of `main`."""
    group = main.commands["audio"]
    if not isinstance(group, click.Group):
        raise TypeError("'audio' must be a command group")

    @group.command("build")
    @click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="audio root (default: AUDIO_DIR, else the packaged prompts)",
    )
    @click.option("--force", is_flag=True, help="render every prompt again, not only changed ones")
    @click.option(
        "--lang", type=click.Choice(["ru", "en"]), default=None, help="only this language"
    )
    def audio_build(directory: Path | None, force: bool, lang: str | None) -> None:
        """Render placeholder prompts from the flows' texts with espeak-ng (8 kHz mono WAV)."""
        root = _root(directory)
        try:
            report = build(root, _flows(), force=force, only_language=lang)
        except AudioToolMissing as exc:
            raise click.ClickException(str(exc)) from exc
        for name in report.built:
            click.echo(f"built {name}")
        click.echo(
            f"{len(report.built)} prompt(s) built, {report.kept} unchanged "
            f"(resampled by {report.resampler}); manifest: {root / 'manifest.json'}"
        )

    @group.command("check")
    @click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="audio root (default: AUDIO_DIR, else the packaged prompts)",
    )
    def audio_check(directory: Path | None) -> None:
        """Verify every prompt of every flow and language exists as playable 8 kHz mono WAV."""
        report = check(_root(directory), _flows())
        for problem in report.problems:
            click.echo(problem, err=True)
        if not report.ok:
            raise click.ClickException(
                f"{len(report.problems)} of {report.checked} prompt(s) missing or unplayable; "
                "run `survey-gateway audio build`"
            )
        click.echo(f"all {report.checked} prompt(s) present and playable")
