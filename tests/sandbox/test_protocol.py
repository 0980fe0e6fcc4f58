"""The protocol client against the standard library's own Listener, as submissions use it."""

from __future__ import annotations

import io
import os
import socket
import struct
import threading
from multiprocessing.connection import Listener

import pytest
from PIL import Image

from edgemaxx.errors import SubmissionError
from sandbox.protocol import InferenceClient, ProtocolTimeout, TextToImageRequest, check_image


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "inferences.sock")


def _serve(path: str, handler) -> threading.Thread:
    listener = Listener(path)

    def run():
        with listener, listener.accept() as connection:
            handler(connection)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_round_trip_with_stdlib_listener(sock_path):
    seen = []

    def handler(connection):
        while True:
            try:
                payload = connection.recv_bytes()
            except EOFError:
                return
            seen.append(TextToImageRequest.model_validate_json(payload))
            connection.send_bytes(_png(32, 16))

    thread = _serve(sock_path, handler)
    client = InferenceClient.connect(sock_path, max_output_bytes=1 << 20)
    request = TextToImageRequest(prompt="a cat", width=32, height=16, seed=7)
    data = client.request(request, timeout_s=5)
    client.close()
    thread.join(5)
    assert seen == [request]
    assert check_image(data, 32, 16) == (32, 16)
    assert not thread.is_alive(), "the submission must see EOF when the client closes"


def test_stalled_half_frame_times_out(sock_path):
    def handler(connection):
        connection.recv_bytes()
        # A length header promising 100 bytes, then nothing: the stdlib Client would hang here.
        raw = socket.socket(fileno=connection.fileno())
        raw.sendall(struct.pack("!i", 100) + b"x" * 10)
        raw.detach()
        threading.Event().wait(3)

    _serve(sock_path, handler)
    client = InferenceClient.connect(sock_path, max_output_bytes=1 << 20)
    with pytest.raises(ProtocolTimeout):
        client.request(TextToImageRequest(prompt="x"), timeout_s=0.5)
    client.close()


def test_oversized_output_is_refused_before_reading(sock_path):
    def handler(connection):
        connection.recv_bytes()
        connection.send_bytes(b"\0" * 4096)

    _serve(sock_path, handler)
    client = InferenceClient.connect(sock_path, max_output_bytes=1024)
    with pytest.raises(SubmissionError, match="4096-byte output, over the 1024-byte cap"):
        client.request(TextToImageRequest(prompt="x"), timeout_s=5)
    client.close()


def test_closed_socket_is_reported(sock_path):
    _serve(sock_path, lambda connection: connection.recv_bytes())
    client = InferenceClient.connect(sock_path, max_output_bytes=1024)
    with pytest.raises(SubmissionError, match="closed the inference socket"):
        client.request(TextToImageRequest(prompt="x"), timeout_s=5)
    client.close()


@pytest.mark.parametrize(
    ("data", "size", "message"),
    [
        (b"not an image", (32, 16), "do not decode as an image"),
        (_png(32, 16)[:40], (32, 16), "do not decode as an image"),
        (_png(64, 64), (32, 16), "returned a 64x64 image for a 32x16 request"),
    ],
)
def test_check_image_rejects(data, size, message):
    with pytest.raises(SubmissionError, match=message):
        check_image(data, *size)


def test_request_json_matches_sn39_fields():
    request = TextToImageRequest(prompt="p", seed=3)
    assert TextToImageRequest.model_fields.keys() == {
        "prompt", "negative_prompt", "width", "height", "seed"}
    assert request.model_dump_json() == (
        '{"prompt":"p","negative_prompt":null,"width":null,"height":null,"seed":3}'
    )


def test_a_symlink_in_place_of_the_socket_is_not_followed(tmp_path, sock_path):
    """The submission owns the socket's directory: a link there to a host socket must not lead
    the validator's connect() to it."""
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.bind(str(tmp_path / "host-service.sock"))
    host.listen()
    host.setblocking(False)
    os.symlink(tmp_path / "host-service.sock", sock_path)
    with pytest.raises(SubmissionError, match="made inferences.sock a symbolic link, not a socket: refused"):
        InferenceClient.connect(sock_path, max_output_bytes=1024)
    with pytest.raises(BlockingIOError):
        host.accept()  # nobody came
    host.close()


def test_only_a_socket_is_connected_to(sock_path):
    with open(sock_path, "w") as handle:
        handle.write("not a socket")
    with pytest.raises(SubmissionError, match="made inferences.sock a regular file, not a socket"):
        InferenceClient.connect(sock_path, max_output_bytes=1024)
