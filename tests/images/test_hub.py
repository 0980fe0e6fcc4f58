"""Models on the hub, with SN39's pattern semantics: which files an entry fetches, its size from a
local stand-in for the hub's API (no network), an unreachable or erroring hub, and prefetch from
a local cache."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from edgemaxx.errors import InfrastructureError, SubmissionError
from edgemaxx.models import ModelSpec
from edgemaxx.settings import Settings
from images.checks import static_checks
from images.prefetch import model_size, prefetch, selected_files

REVISION = "741f7c3ce8b383c54771c7003378a50191e9efe9"

# The shape of black-forest-labs/FLUX.1-schnell's file list (sizes made up), plus a nested folder.
FLUX_FILES = {
    "model_index.json": 536,
    "ae.safetensors": 335_304_388,
    "flux1-schnell.safetensors": 23_782_506_688,
    "scheduler/scheduler_config.json": 274,
    "text_encoder/model.safetensors": 246_144_152,
    "text_encoder_2/model-00001-of-00002.safetensors": 4_994_582_224,
    "tokenizer/vocab.json": 1_059_962,
    "transformer/config.json": 378,
    "transformer/diffusion_pytorch_model-00001-of-00003.safetensors": 9_962_580_296,
    "transformer/blocks/extra/notes.txt": 10,
    "vae/diffusion_pytorch_model.safetensors": 167_666_902,
    "vae/config.json": 774,
}


def _spec(include: list[str] | None = None, exclude: list[str] | None = None) -> ModelSpec:
    return ModelSpec(repository="black-forest-labs/FLUX.1-schnell", revision=REVISION,
                     include=include, exclude=exclude)


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        # SN39's baseline declares this: a bare folder name matches no path under it, so the whole
        # snapshot, transformer/ included, is fetched (as huggingface_hub does on SN39).
        (None, ["transformer"], set(FLUX_FILES)),
        # A trailing slash is a folder: everything under it, however deep, is left out.
        (None, ["transformer/"], {f for f in FLUX_FILES if not f.startswith("transformer/")}),
        (None, ["transformer/*"], {f for f in FLUX_FILES if not f.startswith("transformer/")}),
        # `*` crosses `/`: every .safetensors anywhere, nested ones too.
        (["*.safetensors"], None, {f for f in FLUX_FILES if f.endswith(".safetensors")}),
        (["transformer/*.safetensors"], None, {"transformer/diffusion_pytorch_model-00001-of-00003.safetensors"}),
        (["transformer/"], ["*.txt"], {"transformer/config.json",
                                       "transformer/diffusion_pytorch_model-00001-of-00003.safetensors"}),
        (["transformer/blocks/"], None, {"transformer/blocks/extra/notes.txt"}),
        # Matching is on the whole path and case-sensitive: these match nothing.
        (["config.json"], None, set()),
        (["*.SAFETENSORS"], None, set()),
        ([], [], set(FLUX_FILES)),  # empty lists are "no pattern", as SN39 passes `or None`
    ],
)
def test_patterns_select_what_huggingface_hub_would(include, exclude, expected):
    assert set(selected_files(_spec(include, exclude), FLUX_FILES)) == expected


class _FakeHub(http.server.BaseHTTPRequestHandler):
    """Answers `GET /api/models/{owner}/{name}/revision/{revision}` like the hub's API."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == f"/api/models/black-forest-labs/FLUX.1-schnell/revision/{REVISION}":
            body = json.dumps({"id": "black-forest-labs/FLUX.1-schnell", "sha": REVISION,
                               "siblings": [{"rfilename": f, "size": s} for f, s in FLUX_FILES.items()]})
            self._send(200, body.encode())
        elif path.startswith("/api/models/owner/broken/"):
            self._send(503, b"upstream unavailable")
        elif path.startswith("/api/models/black-forest-labs/FLUX.1-schnell/revision/"):
            self._send(404, b'{"error": "Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"})
        else:
            self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_size_counts_only_the_files_the_entry_fetches(hub):
    everything = sum(FLUX_FILES.values())
    assert model_size(_spec(exclude=["transformer"]), endpoint=hub) == everything
    without = everything - sum(s for f, s in FLUX_FILES.items() if f.startswith("transformer/"))
    assert model_size(_spec(exclude=["transformer/"]), endpoint=hub) == without


def test_missing_model_or_revision_is_the_miners_fault(hub):
    with pytest.raises(SubmissionError, match="does not exist or is not public"):
        model_size(ModelSpec(repository="nobody/nothing", revision=REVISION), endpoint=hub)
    with pytest.raises(SubmissionError, match="has no revision 0000000"):
        model_size(_spec().model_copy(update={"revision": "0000000"}), endpoint=hub)


@pytest.mark.parametrize("where", ["closed-port", "server-error"])
def test_an_unreachable_or_failing_hub_is_ours(where, hub):
    if where == "closed-port":
        import socket

        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            endpoint, spec = f"http://127.0.0.1:{probe.getsockname()[1]}", _spec()
    else:
        endpoint, spec = hub, ModelSpec(repository="owner/broken", revision=REVISION)
    with pytest.raises(InfrastructureError, match="the hub could not be reached") as info:
        model_size(spec, endpoint=endpoint, timeout_s=5)
    assert spec.repository in str(info.value)


def test_check_line_says_why_the_size_is_unknown(tmp_path, monkeypatch):
    """On this machine the real hub is unreachable: the check is a line with a reason."""
    from tests.conftest import fixture_path

    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "3")
    submission = tmp_path / "sub"
    import shutil

    shutil.copytree(fixture_path("garbage-output"), submission)
    pyproject = submission / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        "[tool.edge-maxxing]\nmodels = []\n", '[[tool.edge-maxxing.models]]\nrepository = '
        f'"black-forest-labs/FLUX.1-schnell"\nrevision = "{REVISION}"\nexclude = ["transformer"]\n'))
    report = static_checks(submission, Settings(data_dir=tmp_path / "data"), offline=False)
    size = next(c for c in report.checks if c.name == "models-size")
    assert size.ok and size.unknown, size
    assert size.reason.startswith("unknown — the hub could not be reached (black-forest-labs/FLUX.1-schnell: ")


def test_prefetch_explains_an_unreachable_hub(tmp_path, monkeypatch):
    # This machine cannot reach the hub: ours to retry, saying which model and why.
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "3")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "3")
    with pytest.raises(InfrastructureError) as info:
        prefetch([_spec(exclude=["transformer"])], tmp_path / "models", timeout_s=5)
    assert f"the hub could not be reached for black-forest-labs/FLUX.1-schnell@{REVISION}" in str(info.value)


def test_prefetch_uses_the_cache_without_network(tmp_path):
    """A model already in the shared cache is found offline; only this entry's files count."""
    cache = tmp_path / "models"
    revision = "a" * 40
    snapshot = cache / "models--owner--tiny" / "snapshots" / revision
    (snapshot / "transformer").mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"\1" * 1234)
    (snapshot / "transformer" / "weights.bin").write_bytes(b"\1" * 100)
    (cache / "models--owner--tiny" / "refs").mkdir()
    assert prefetch([ModelSpec(repository="owner/tiny", revision=revision)], cache) == 1334
    assert prefetch([ModelSpec(repository="owner/tiny", revision=revision, exclude=["transformer/"])],
                    cache) == 1234
    with pytest.raises(SubmissionError, match="over the 0 GiB limit"):
        prefetch([ModelSpec(repository="owner/tiny", revision=revision)], cache, max_bytes=1000)
