"""The embedded default's broker: kombu's file-system transport, with files that appear whole.

kombu creates a message file and then writes into it. A worker that lists the queue folder in
between takes the still empty file and dies on its JSON ("Expecting value: line 1 column 1"),
and the message is lost. The exchange table in the control folder has the same gap when the
web app, the workers and beat start together. Here every such file is written under a name no
reader looks at and then renamed (or linked) into place, which is atomic within a folder: a
reader finds no file or a whole one. Production uses Redis and never loads this module.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

_PART_SUFFIX = ".part"


def _part_of(path: Path) -> Path:
    """Where `path` is written before it appears: no queue's reader matches this name."""
    return path.with_name(f"{path.name}.{uuid.uuid4().hex}{_PART_SUFFIX}")


class Channel(filesystem.Channel):
    # kombu's own Channel and its base name the argument differently; ours follows the former.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Put `payload` onto `queue` as one file that appears whole."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        path = Path(self.data_folder_out) / name
        part = _part_of(path)
        try:
            part.write_bytes(str_to_bytes(dumps(payload)))
            os.replace(part, path)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise ChannelError(f"Cannot add file {str(path)!r} to directory") from exc

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        """Create the exchange's table whole; add to an existing one as kombu does (under its
        file lock, which readers take too)."""
        table = self._exchange_file(exchange)
        if not table.exists():
            self.control_folder.mkdir(exist_ok=True)
            binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
            part = _part_of(table)
            try:
                part.write_bytes(str_to_bytes(dumps([binding])))
                os.link(part, table)  # refuses if another process created it meanwhile
                return
            except FileExistsError:
                pass
            except OSError as exc:
                raise ChannelError(f"Cannot open {table}") from exc
            finally:
                part.unlink(missing_ok=True)
        super()._queue_bind(exchange, routing_key, pattern, queue)


class Transport(filesystem.Transport):
    Channel = Channel
