"""A capped ring buffer for a submission's output: memory stays bounded however much it prints."""

from __future__ import annotations

import threading
from typing import IO


class LogTail:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._dropped = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def write(self, data: bytes) -> None:
        with self._lock:
            self._buffer += data
            excess = len(self._buffer) - self.limit
            if excess > 0:
                del self._buffer[:excess]
                self._dropped += excess

    def drain(self, stream: IO[bytes]) -> None:
        """Read `stream` to EOF on a thread, so the child never blocks on a full pipe."""

        def _pump() -> None:
            for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
                self.write(chunk)

        self._thread = threading.Thread(target=_pump, name="log-tail", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 2.0) -> None:
        if self._thread:
            self._thread.join(timeout)

    def text(self) -> str:
        with self._lock:
            body = bytes(self._buffer).decode("utf-8", errors="replace")
            dropped = self._dropped
        return f"[… {dropped} earlier bytes dropped]\n{body}" if dropped else body


def cap(text: str, limit: int) -> str:
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    return f"[… {len(data) - limit} earlier bytes dropped]\n" + data[-limit:].decode(
        "utf-8", errors="replace"
    )
