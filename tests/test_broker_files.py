"""The embedded default's broker: a worker never takes a message, or reads an exchange table,
that another process is still writing."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue

from gateway.broker_files import PART_SUFFIX, Transport


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


def test_a_message_being_written_is_not_taken(tmp_path: Path) -> None:
    with connection(tmp_path) as conn:
        channel: Any = conn.channel()
        QUEUE(channel).declare()
        # What a producer leaves while it writes: a file under its part name.
        unfinished = tmp_path / "queue" / f"1_a.sends.msg.0f{PART_SUFFIX}"
        unfinished.write_bytes(b'{"body": ')
        with pytest.raises(Empty):
            channel._get("sends")
        assert unfinished.exists(), "the writer's file is left to the writer"

        conn.Producer(channel).publish({"n": 1}, exchange=QUEUE.exchange, routing_key="sends")
        assert [p.name for p in (tmp_path / "queue").iterdir() if p.name.endswith(".msg")]
        message = channel.basic_get("sends", no_ack=True)
        assert message is not None and message.payload == {"n": 1}


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
