"""The MQTT sink's on-disk journal of order-class events, which is also its spool.

Every order, fill (and later position and executor) event gets the next sequence
number of the daemon and is appended to the journal before it is published. The
journal is a directory of segment files ``journal-<first seq>.log``, one event a
line (``seq``, time, topic and payload, tab-separated), plus ``acked``, the highest
sequence number up to which the broker acknowledged every event.

* **Spool**: the events after ``acked`` are published again after a broker
  outage or a daemon restart (at least once: consumers drop duplicates by
  ``event_id``). At most ``spool_max`` events wait; past that the oldest are no
  longer pushed (``dropped`` counts them) but stay in the journal, where a
  consumer's replay still finds them.
* **Journal**: consumers that missed events ask for a replay from a sequence
  number or a time (docs/bus.md). A new segment starts every ``segment_events``
  events; whole segments are deleted, oldest first, while the journal holds more
  than ``max_events`` events or a segment's newest event is older than
  ``max_age`` seconds (never the segment being written).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

__all__ = ["Journal", "JournalEntry"]

_PREFIX = "journal-"
_SUFFIX = ".log"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journaled event.

    Attributes:
        seq: Its sequence number.
        time: When it was journaled, epoch seconds.
        topic: The MQTT topic it is published on.
        payload: The encoded event (JSON, with ``event_id`` and ``seq``).
    """

    seq: int
    time: float
    topic: str
    payload: bytes


def _parse(line: bytes) -> JournalEntry | None:
    parts = line.rstrip(b"\n").split(b"\t", 3)
    if len(parts) != 4 or not line.endswith(b"\n"):
        return None
    try:
        return JournalEntry(int(parts[0]), float(parts[1]), parts[2].decode(), parts[3])
    except ValueError:
        return None


class Journal:
    """The journal and spool in ``directory`` (created when missing).

    Args:
        directory: Where the segment files live.
        segment_events: Events per segment file.
        max_events: Events kept at most (whole segments are deleted).
        max_age: Seconds after which a complete segment (all its events older)
            is deleted.
        spool_max: Unacknowledged events pushed again at most.
        fsync: Whether ``flush`` also forces the data to the disk.

    Attributes:
        head: The last sequence number given (0: none yet).
        acked: Every event up to this one was acknowledged by the broker.
        dropped: Events no longer pushed because the spool was full.
    """

    def __init__(
        self,
        directory: str,
        *,
        segment_events: int = 10_000,
        max_events: int = 1_000_000,
        max_age: float = 7 * 86400.0,
        spool_max: int = 100_000,
        fsync: bool = True,
    ) -> None:
        self.directory = directory
        self.segment_events = segment_events
        self.max_events = max_events
        self.max_age = max_age
        self.spool_max = spool_max
        self.fsync = fsync
        os.makedirs(directory, exist_ok=True)
        self.dropped = 0
        self.pending: OrderedDict[int, JournalEntry] = OrderedDict()
        self._segments = self._list_segments()
        self._acked_path = os.path.join(directory, "acked")
        self.acked = self._read_acked()
        self._saved_acked = self.acked
        self.head = 0
        self._in_segment = 0
        self._handle: IO[bytes] | None = None
        self._load()

    # -- files ------------------------------------------------------------------------

    def _list_segments(self) -> list[int]:
        firsts = []
        for name in os.listdir(self.directory):
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
                try:
                    firsts.append(int(name[len(_PREFIX) : -len(_SUFFIX)]))
                except ValueError:
                    continue
        return sorted(firsts)

    def _path(self, first: int) -> str:
        return os.path.join(self.directory, f"{_PREFIX}{first:020d}{_SUFFIX}")

    def _read_acked(self) -> int:
        try:
            with open(self._acked_path, encoding="ascii") as handle:
                return int(handle.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _save_acked(self) -> None:
        if self.acked == self._saved_acked:
            return
        tmp = self._acked_path + ".tmp"
        with open(tmp, "w", encoding="ascii") as handle:
            handle.write(str(self.acked))
        os.replace(tmp, self._acked_path)
        self._saved_acked = self.acked

    def _load(self) -> None:
        if not self._segments:
            self.head = self.acked
            return
        last = self._segments[-1]
        path = self._path(last)
        good = 0
        count = 0
        with open(path, "rb") as handle:
            for line in handle:
                entry = _parse(line)
                if entry is None:
                    break  # a line cut by a crash: the rest is dropped
                good += len(line)
                count += 1
                self.head = entry.seq
        os.truncate(path, good)
        if count == 0:
            self.head = max(last - 1, self.acked)
        self._in_segment = count
        self._handle = open(path, "ab")  # noqa: SIM115 - owned by the journal
        self.acked = min(self.acked, self.head)
        for entry in self.read(from_seq=self.acked + 1):
            self._spool(entry)

    def _spool(self, entry: JournalEntry) -> None:
        self.pending[entry.seq] = entry
        if len(self.pending) > self.spool_max:
            self.pending.popitem(last=False)
            self.dropped += 1

    def _rotate(self) -> None:
        if self._handle is not None:
            self._handle.close()
        first = self.head + 1
        self._segments.append(first)
        self._handle = open(self._path(first), "ab")  # noqa: SIM115 - owned by the journal
        self._in_segment = 0
        self._expire()

    def _expire(self) -> None:
        now = time.time()
        while len(self._segments) > 1:
            oldest = self._segments[0]
            path = self._path(oldest)
            try:
                newest_time = os.path.getmtime(path)
            except OSError:
                newest_time = now
            too_many = self.head - oldest + 1 > self.max_events
            if not (too_many or newest_time < now - self.max_age):
                break
            os.remove(path)
            self._segments.pop(0)

    # -- writing ----------------------------------------------------------------------

    def append(self, topic: str, encode: Callable[[int, float], bytes]) -> JournalEntry:
        """Journal one event under the next sequence number and spool it.

        Args:
            topic: The topic it is published on (no tab or newline).
            encode: Makes the payload from ``(seq, time)`` (no newline in it).

        Returns:
            The entry.

        Raises:
            OSError: The journal cannot be written.
        """
        if self._handle is None or self._in_segment >= self.segment_events:
            self._rotate()
        assert self._handle is not None
        seq = self.head + 1
        now = time.time()
        payload = encode(seq, now)
        self._handle.write(b"%d\t%r\t%s\t%s\n" % (seq, now, topic.encode(), payload))
        self.head = seq
        self._in_segment += 1
        entry = JournalEntry(seq, now, topic, payload)
        self._spool(entry)
        return entry

    def ack(self, seq: int) -> None:
        """The broker acknowledged an event: it leaves the spool.

        Args:
            seq: Its sequence number.
        """
        self.pending.pop(seq, None)
        self.acked = next(iter(self.pending)) - 1 if self.pending else self.head

    def flush(self) -> None:
        """Write buffered lines (and ``fsync`` them when configured); save ``acked``."""
        if self._handle is not None:
            self._handle.flush()
            if self.fsync:
                os.fsync(self._handle.fileno())
        self._save_acked()

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if self._handle is not None:
            self.flush()
            self._handle.close()
            self._handle = None
        self._save_acked()

    # -- reading ----------------------------------------------------------------------

    @property
    def oldest(self) -> int:
        """The oldest sequence number still in the journal (``head + 1`` when empty)."""
        return self._segments[0] if self._segments else self.head + 1

    def read(
        self, *, from_seq: int | None = None, from_time: float | None = None
    ) -> Iterator[JournalEntry]:
        """The journaled events from a sequence number or a time, oldest first.

        Args:
            from_seq: The first sequence number wanted.
            from_time: The earliest time wanted, epoch seconds.

        Yields:
            The entries still kept.
        """
        if self._handle is not None:
            self._handle.flush()
        for index, first in enumerate(list(self._segments)):
            following = self._segments[index + 1] if index + 1 < len(self._segments) else None
            if from_seq is not None and following is not None and following <= from_seq:
                continue
            path = self._path(first)
            try:
                complete = following is not None
                if from_time is not None and complete and os.path.getmtime(path) < from_time:
                    continue
                handle = open(path, "rb")  # noqa: SIM115 - closed below
            except OSError:
                continue  # expired meanwhile
            with handle:
                for line in handle:
                    entry = _parse(line)
                    if entry is None:
                        break
                    if from_seq is not None and entry.seq < from_seq:
                        continue
                    if from_time is not None and entry.time < from_time:
                        continue
                    yield entry
