"""Benchmark: how many SIP survey calls one `survey-gateway sip` process holds at once.

Not a test. Creates its own PostgreSQL database on the server of DATABASE_URL (or
postgresql://postgres@127.0.0.1:5432/test), migrates it, and starts `survey-gateway sip` on
a loopback port the system picks. For each level of concurrency (default 25, 50, 100, 200)
SIPp (Debian's sip-tester) places that many calls at once as a PBX handing callers over,
each caller pressing a key every 3 s as RFC 4733 events (5 4 3 5 4, then # at the comment),
so every call hears a prompt start about every 3 s for some 20 s. All calls send their RTP
to one sink here, which measures how evenly the gateway paces it.

It prints, per level: calls completed and failed (SIPp's count), surveys completed in the
database, the SIP process's CPU time as a share of one core, RTP frames per second received,
and the gaps between consecutive frames of a stream while a prompt plays (p99 and the share
later than 40 ms, where 20 ms is on time). A level is held when every call completes with its
five scores and fewer than 1 % of frames come late. Stops the process and drops the database
at the end unless --keep.

    .venv/bin/python bench/sip_load.py [--levels 25,50,100,200]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

SCENARIO = Path(__file__).parent / "sip_load_call.xml"
START_TIMEOUT_SECONDS = 60
PLAYING_GAP_SECONDS = 0.5  # a longer gap is a pause between prompts, not a late frame
LATE_SECONDS = 0.040


@dataclass
class Sink:
    """One UDP port every call sends its RTP to; per-stream arrival gaps while playing."""

    sock: socket.socket = field(
        default_factory=lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    packets: int = 0
    gaps: list[float] = field(default_factory=list)
    _last: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except (TimeoutError, OSError):
                continue
            now = time.monotonic()
            if len(data) < 12:
                continue
            (ssrc,) = struct.unpack("!I", data[8:12])
            last = self._last.get(ssrc)
            if last is not None and now - last < PLAYING_GAP_SECONDS:
                self.gaps.append(now - last)
            self._last[ssrc] = now
            self.packets += 1

    def reset(self) -> None:
        self.packets, self.gaps, self._last = 0, [], {}

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@contextlib.contextmanager
def own_database(name: str, keep: bool) -> Iterator[str]:
    from gateway.migrate import upgrade

    server = make_url(os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test")
    server = server.set(drivername="postgresql+psycopg")
    url = server.set(database=name).render_as_string(hide_password=False)
    admin = create_engine(
        server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(url)
        yield url
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_answering(port: int, process: subprocess.Popen[bytes]) -> None:
    options = (
        "OPTIONS sip:gateway@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};"
        "branch=z9hG4bK-b{n}\r\nFrom: <sip:b@127.0.0.1>;tag=b\r\nTo: <sip:gateway@127.0.0.1>\r\n"
        "Call-ID: b{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe.settimeout(0.5)
        local, n = probe.getsockname()[1], 0
        while time.monotonic() < deadline and process.poll() is None:
            n += 1
            probe.sendto(options.format(port=port, local=local, n=n).encode(), ("127.0.0.1", port))
            with contextlib.suppress(TimeoutError):
                if probe.recv(4096).startswith(b"SIP/2.0 200"):
                    return
    raise SystemExit("survey-gateway sip did not start")


def completed_surveys(url: str, since_id: int) -> tuple[int, int]:
    from gateway.models import Answer, SurveySession, SurveyStatus

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            done = conn.scalar(
                select(func.count())
                .select_from(SurveySession)
                .where(SurveySession.id > since_id, SurveySession.status == SurveyStatus.COMPLETED)
            )
            answers = conn.scalar(
                select(func.count())
                .select_from(Answer)
                .where(Answer.session_id > since_id, Answer.value.is_not(None))
            )
            return int(done or 0), int(answers or 0)
    finally:
        engine.dispose()


def last_survey_id(url: str) -> int:
    from gateway.models import SurveySession

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.max(SurveySession.id))) or 0)
    finally:
        engine.dispose()


def sipp_counts(output: str) -> tuple[int, int]:
    def count(label: str) -> int:
        found = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", output)
        return int(found[-1]) if found else 0

    return count("Successful call"), count("Failed call")


def run_level(calls: int, sip_port: int, sink: Sink, workdir: Path, pid: int) -> dict[str, float]:
    sink.reset()
    command = [
        shutil.which("sipp") or "sipp",
        f"127.0.0.1:{sip_port}",
        "-sf", str(SCENARIO),
        "-m", str(calls), "-l", str(calls), "-r", str(calls), "-rp", "1000",
        "-i", "127.0.0.1", "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_port() & ~1),
        "-key", "rtp_port", str(sink.port), "-key", "caller", "89161234567",
        "-timeout", "180s", "-nostdin", "-trace_err",
    ]  # fmt: skip
    cpu_before, started = cpu_seconds(pid), time.monotonic()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_before
    ok, failed = sipp_counts(result.stdout)
    gaps = sorted(sink.gaps)
    return {
        "ok": ok,
        "failed": failed,
        "wall": wall,
        "cpu_share": cpu / wall,
        "frames_per_second": sink.packets / wall,
        "p99_gap_ms": 1000 * gaps[int(0.99 * (len(gaps) - 1))] if gaps else 0.0,
        "late_share": sum(g > LATE_SECONDS for g in gaps) / len(gaps) if gaps else 0.0,
        "median_gap_ms": 1000 * statistics.median(gaps) if gaps else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="25,50,100,200", help="concurrent calls per round")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    if shutil.which("sipp") is None:
        raise SystemExit("SIPp is not installed (Debian package sip-tester; make system-deps)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    sink = Sink()
    name = f"sg_bench_sip_{uuid.uuid4().hex[:8]}"
    with own_database(name, args.keep) as url:
        sip_port, low = free_port(), 40000
        env = dict(
            os.environ,
            DATABASE_URL=url,
            SIP_LISTEN=f"127.0.0.1:{sip_port}",
            SIP_ALLOWED_PEERS="127.0.0.1",
            SIP_MAX_CALLS=str(max(levels)),
            SIP_RTP_PORTS=f"{low}-{low + 2 * max(levels) + 99}",
            LOG_LEVEL="WARNING",
            QUIET_HOURS="",
        )
        command = [sys.executable, "-c", "from gateway.cli import main; main()", "sip"]
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        workdir = Path(os.environ.get("TMPDIR", "/tmp")) / name
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            wait_until_answering(sip_port, process)
            print(
                "calls  completed  failed  surveys  SIP CPU (of 1 core)  RTP frames/s"
                "  gap median/p99 ms  late >40 ms",
                flush=True,
            )
            for calls in levels:
                before = last_survey_id(url)
                figures = run_level(calls, sip_port, sink, workdir, process.pid)
                surveys, answers = completed_surveys(url, before)
                print(
                    f"{calls:5d}  {figures['ok']:9.0f}  {figures['failed']:6.0f}  {surveys:7d}"
                    f"  {100 * figures['cpu_share']:18.0f} %  {figures['frames_per_second']:12.0f}"
                    f"  {figures['median_gap_ms']:8.1f} / {figures['p99_gap_ms']:5.1f}"
                    f"  {100 * figures['late_share']:10.2f} %"
                    + ("" if answers == 5 * surveys else f"  (answers {answers} != 5 x surveys)"),
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(timeout=60)
            sink.close()
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
