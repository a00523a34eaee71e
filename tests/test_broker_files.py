"""The embedded default's broker: a worker never takes a message, or reads an exchange table,
that another process is still writing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from queue import Empty
from typing import Any

from kombu import Connection, Exchange, Queue

from gateway.broker_files import Transport


def connection(folder: Path) -> Connection:
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return Connection(
        "filesystem://localhost//",
        transport=Transport,
        transport_options={
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        },
    )


QUEUE = Queue("sends", Exchange("sends", type="direct"), routing_key="sends")


def produce(folder: str, count: int) -> None:
    with connection(Path(folder)) as conn:
        producer = conn.Producer()
        for n in range(count):
            producer.publish(
                {"n": n, "padding": "x" * 4000},
                exchange=QUEUE.exchange,
                routing_key="sends",
                declare=[QUEUE],
            )


def test_a_worker_looking_while_a_message_is_written_takes_nothing(tmp_path: Path) -> None:
    """kombu's own transport creates the message file before it writes it: a worker polling
    at that moment took the empty file and died on its JSON, and the message was lost."""
    with connection(tmp_path) as conn:
        producer_channel: Any = conn.channel()
        QUEUE(producer_channel).declare()
        worker_channel: Any = conn.channel()
        seen: list[str] = []

        class WorkerLooksMidWrite:
            """Serialised while the producer writes the message: the worker polls then."""

            def __json__(self) -> str:
                try:
                    seen.append(repr(worker_channel._get("sends")))
                except Empty:
                    seen.append("empty")
                return "whole"

        producer_channel._put("sends", {"n": 1, "probe": WorkerLooksMidWrite()})
        assert seen == ["empty"]
        assert worker_channel._get("sends") == {"n": 1, "probe": "whole"}
        assert not [p for p in (tmp_path / "queue").iterdir()], "no part file left behind"


def test_every_message_arrives_whole_while_another_process_writes(tmp_path: Path) -> None:
    count = 400
    with connection(tmp_path) as conn:
        QUEUE(conn.channel()).declare()
        writer = multiprocessing.get_context("spawn").Process(
            target=produce, args=(str(tmp_path), count)
        )
        writer.start()
        received: list[int] = []
        with conn.SimpleQueue(QUEUE) as queue:
            while len(received) < count:
                message = queue.get(timeout=30)  # raises if the writer stalls or a file is bad
                received.append(message.payload["n"])
                assert message.payload["padding"] == "x" * 4000
                message.ack()
        writer.join(timeout=30)
    assert sorted(received) == list(range(count))
    assert writer.exitcode == 0
    assert not list((tmp_path / "queue").iterdir()), "nothing left behind"
