"""The submission protocol: a request model and `multiprocessing.connection` framing with deadlines.

Submissions serve with the standard library's `Listener` (no authkey), whose frames are a
4-byte big-endian signed length (or -1 followed by an 8-byte length) and the payload. The
standard `Client` has no timeouts, so a submission that sends half a frame and stalls would
hang the validator; this client speaks the same frames over a socket with a deadline per call.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import struct
import time
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from edgemaxx.errors import SubmissionError
from edgemaxx.models import TextToImageRequest


class ProtocolTimeout(SubmissionError):
    pass


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProtocolTimeout("timed out")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(remaining, 1 << 20))
        except TimeoutError as exc:
            raise ProtocolTimeout("timed out") from exc
        if not chunk:
            raise SubmissionError("closed the inference socket")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file"


def connect_no_follow(path: str, timeout_s: float) -> socket.socket:
    """Connect to the socket at `path` itself, never to what a symlink there points at.

    The submission owns the directory its socket lives in, on the host's filesystem: it could put
    a symlink to a host socket (the Docker engine's, Redis's) in its place, and a plain connect()
    by the validator, on the host, would follow it. So: open the path itself (O_PATH|O_NOFOLLOW
    opens a symlink as the link), refuse anything but a socket, and connect through
    /proc/self/fd/N, which names exactly the inode checked: the path cannot be swapped between
    the check and the connect.
    """
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISSOCK(mode):
            raise SubmissionError(f"made {os.path.basename(path)} {_kind(mode)}, not a socket: refused")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(f"/proc/self/fd/{fd}")
        except OSError:
            sock.close()
            raise
        return sock
    finally:
        os.close(fd)


@dataclass
class InferenceClient:
    """One connection to a submission's `inferences.sock`."""

    sock: socket.socket
    max_output_bytes: int

    @classmethod
    def connect(cls, path: str, max_output_bytes: int, timeout_s: float = 5.0) -> InferenceClient:
        """Raises SubmissionError when `path` is not a socket (a symlink, say); OSError while
        nothing listens there yet."""
        return cls(sock=connect_no_follow(path, timeout_s), max_output_bytes=max_output_bytes)

    def send(self, payload: bytes, timeout_s: float) -> None:
        header = struct.pack("!i", len(payload)) if len(payload) <= 0x7FFFFFFF else (
            struct.pack("!iQ", -1, len(payload))
        )
        self.sock.settimeout(timeout_s)
        try:
            self.sock.sendall(header + payload)
        except TimeoutError as exc:
            raise ProtocolTimeout("did not read the request in time") from exc
        except OSError as exc:
            raise SubmissionError(f"closed the inference socket ({exc.strerror or exc})") from exc

    def receive(self, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        try:
            (size,) = struct.unpack("!i", _recv_exact(self.sock, 4, deadline))
            if size == -1:
                (size,) = struct.unpack("!Q", _recv_exact(self.sock, 8, deadline))
            if size < 0:
                raise SubmissionError(f"sent a malformed frame header (length {size})")
            if size > self.max_output_bytes:
                raise SubmissionError(
                    f"sent a {size}-byte output, over the {self.max_output_bytes}-byte cap"
                )
            return _recv_exact(self.sock, size, deadline)
        except ConnectionError as exc:
            raise SubmissionError(f"closed the inference socket ({exc})") from exc

    def request(self, request: TextToImageRequest, timeout_s: float) -> bytes:
        self.send(request.model_dump_json().encode(), timeout_s)
        return self.receive(timeout_s)

    def close(self) -> None:
        # Closing is the protocol's "no more requests": the submission sees EOF and exits.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def check_image(data: bytes, width: int | None, height: int | None) -> tuple[int, int]:
    """Decode `data` fully; raise SubmissionError unless it is an image of the requested size."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            size = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SubmissionError(f"returned {len(data)} bytes that do not decode as an image") from exc
    if (width is not None and size[0] != width) or (height is not None and size[1] != height):
        raise SubmissionError(
            f"returned a {size[0]}x{size[1]} image for a {width}x{height} request"
        )
    return size
