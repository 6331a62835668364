"""Downloader: file:// and a local HTTP server that truncates, corrupts, fails, or ignores Range."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from facelatent.download import DownloadEntry, DownloadError, download_ffhq, download_files
from facelatent.errors import InputFileError

FAST = dict(backoff=0.01, timeout=5, progress=False)


def blob(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(n)


class FileServer:
    """Serves `files` on 127.0.0.1; `modes[name]` picks a misbehaviour; every request is logged."""

    def __init__(self, files: dict[str, bytes], modes: dict[str, str]):
        self.files, self.modes = files, modes
        self.requests: list[tuple[str, str | None]] = []
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                with server.lock:
                    server.counts[name] += 1
                    n = server.counts[name]
                    server.requests.append((name, self.headers.get("Range")))
                mode = server.modes.get(name, "")
                if name not in server.files:
                    return self.send_error(404)
                if mode == "fail_always" or (mode == "fail_once" and n == 1):
                    return self.send_error(500)
                body = server.files[name]
                if mode == "corrupt":
                    body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
                m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(m[1]) if m and mode != "no_range" else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if mode == "truncate_once" and n == 1:
                    self.wfile.write(body[: len(body) // 3])  # promise everything, send a third, hang up
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        return Handler


@pytest.fixture
def server():
    files = {f"f{i}.bin": blob(200_000 + 1000 * i, i) for i in range(6)}
    srv = FileServer(files, {})
    yield srv
    srv.close()


def entry(srv: FileServer, name: str, path: str | None = None, **over) -> DownloadEntry:
    data = srv.files[name]
    spec = dict(
        url=srv.url(name),
        path=f"sub/{name}" if path is None else path,
        size=len(data),
        md5=hashlib.md5(data).hexdigest(),
    )
    spec.update(over)
    return DownloadEntry(**spec)


def test_file_urls_and_skip_when_present(tmp_path):
    src = tmp_path / "remote"
    src.mkdir()
    entries = []
    for i in range(3):
        data = blob(50_000, 10 + i)
        (src / f"{i}.png").write_bytes(data)
        entries.append(
            dict(
                url=(src / f"{i}.png").as_uri(),
                path=f"imgs/{i:05d}.png",
                size=len(data),
                md5=hashlib.md5(data).hexdigest(),
            )
        )
    report = download_files(entries, tmp_path / "root", workers=2, **FAST)
    assert sorted(report.downloaded) == [e["path"] for e in entries] and report.bytes_fetched == 150_000
    for i, e in enumerate(entries):
        assert (tmp_path / "root" / e["path"]).read_bytes() == (src / f"{i}.png").read_bytes()
    again = download_files(entries, tmp_path / "root", **FAST)
    assert again.downloaded == [] and len(again.skipped) == 3
    (tmp_path / "root" / entries[0]["path"]).write_bytes(b"damaged")  # a wrong file is fetched again
    assert download_files(entries, tmp_path / "root", **FAST).downloaded == [entries[0]["path"]]


def test_truncated_response_is_resumed_with_range(server, tmp_path):
    server.modes["f1.bin"] = "truncate_once"
    report = download_files([entry(server, "f1.bin"), entry(server, "f2.bin")], tmp_path, **FAST)
    assert sorted(report.downloaded) == ["sub/f1.bin", "sub/f2.bin"]
    assert (tmp_path / "sub/f1.bin").read_bytes() == server.files["f1.bin"]
    ranges = [r for name, r in server.requests if name == "f1.bin"]
    assert ranges == [None, f"bytes={len(server.files['f1.bin']) // 3}-"]
    assert report.bytes_fetched == len(server.files["f1.bin"]) + len(server.files["f2.bin"])  # no byte twice
    assert not list(tmp_path.rglob("*.partial"))


def test_partial_file_is_resumed_or_restarted(server, tmp_path):
    data = server.files["f3.bin"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/f3.bin.partial").write_bytes(data[:1234])
    download_files([entry(server, "f3.bin")], tmp_path, **FAST)
    assert server.requests == [("f3.bin", "bytes=1234-")]
    assert (tmp_path / "sub/f3.bin").read_bytes() == data
    # a server that ignores Range answers 200 with the whole body: the partial is overwritten, not appended to
    server.modes["f4.bin"] = "no_range"
    (tmp_path / "sub/f4.bin.partial").write_bytes(server.files["f4.bin"][:999])
    download_files([entry(server, "f4.bin")], tmp_path, **FAST)
    assert (tmp_path / "sub/f4.bin").read_bytes() == server.files["f4.bin"]


def test_corrupt_body_fails_and_leaves_nothing(server, tmp_path):
    server.modes["f1.bin"] = "corrupt"
    with pytest.raises(DownloadError) as info:
        download_files([entry(server, "f0.bin"), entry(server, "f1.bin")], tmp_path, retries=2, **FAST)
    msg = str(info.value)
    assert "\n" not in msg and "sub/f1.bin (md5 mismatch" in msg and "1 of 2 files" in msg
    assert not (tmp_path / "sub/f1.bin").exists() and not (tmp_path / "sub/f1.bin.partial").exists()
    assert info.value.report.downloaded == ["sub/f0.bin"] and (tmp_path / "sub/f0.bin").is_file()
    assert server.counts["f1.bin"] == 3  # first try + 2 retries


def test_server_error_recovers_on_retry(server, tmp_path):
    server.modes["f2.bin"] = "fail_once"
    report = download_files([entry(server, "f2.bin")], tmp_path, **FAST)
    assert report.downloaded == ["sub/f2.bin"] and server.counts["f2.bin"] == 2
    server.modes["f5.bin"] = "fail_always"
    with pytest.raises(DownloadError, match=r"sub/f5.bin \(HTTP 500; 2 attempts\)"):
        download_files([entry(server, "f5.bin")], tmp_path, retries=1, **FAST)
    assert server.counts["f5.bin"] == 2


def test_not_found_is_not_retried_and_wrong_size_fails(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_files([DownloadEntry(url=server.url("nope.bin"), path="nope.bin")], tmp_path, **FAST)
    assert server.counts["nope.bin"] == 1
    bad = entry(server, "f0.bin", size=len(server.files["f0.bin"]) - 10, md5=None)
    with pytest.raises(DownloadError, match="size"):
        download_files([bad], tmp_path, retries=0, **FAST)
    assert not (tmp_path / "sub/f0.bin").exists()


def test_paths_escaping_the_root_are_refused(server, tmp_path):
    for path in ("../evil.bin", "/tmp/evil.bin", "a/../../evil.bin", ""):
        with pytest.raises(InputFileError, match="refused"):
            download_files([entry(server, "f0.bin"), entry(server, "f1.bin", path=path)], tmp_path / "root", **FAST)
    assert server.requests == []  # refused before anything was fetched
    (tmp_path / "root").mkdir(exist_ok=True)
    (tmp_path / "root/link").symlink_to(tmp_path)
    with pytest.raises(InputFileError, match="outside the data root"):
        download_files([entry(server, "f0.bin", path="link/x.bin")], tmp_path / "root", **FAST)


def _manifest(srv: FileServer, path: Path, first_path: str = "images1024x1024/00000/00000.png") -> Path:
    def spec(name, rel):
        data = srv.files[name]
        return dict(file_url=srv.url(name), file_path=rel, file_size=len(data), file_md5=hashlib.md5(data).hexdigest())

    doc = {
        "0": {
            "category": "training",
            "image": spec("f0.bin", first_path),
            "thumbnail": spec("f1.bin", "thumbnails128x128/00000/00000.png"),
        },
        "1000": {
            "category": "training",
            "image": spec("f2.bin", "images1024x1024/01000/01000.png"),
            "thumbnail": spec("f3.bin", "thumbnails128x128/01000/01000.png"),
        },
    }
    path.write_text(json.dumps(doc))
    return path


def test_download_ffhq_over_http(server, tmp_path):
    manifest = _manifest(server, tmp_path / "ffhq-dataset-v2.json")
    report = download_ffhq(manifest, tmp_path / "root", kinds=("image",), workers=2, **FAST)
    assert sorted(report.downloaded) == ["images1024x1024/00000/00000.png", "images1024x1024/01000/01000.png"]
    assert (tmp_path / "root/ffhq-dataset-v2.json").read_text() == manifest.read_text()
    report = download_ffhq(manifest, tmp_path / "root", kinds=("image", "thumbnail"), indices=[1000], **FAST)
    assert report.downloaded == ["thumbnails128x128/01000/01000.png"] and len(report.skipped) == 1
    evil = _manifest(server, tmp_path / "evil.json", first_path="../../outside.png")
    with pytest.raises(InputFileError, match="evil.json: refused"):
        download_ffhq(evil, tmp_path / "root2", **FAST)
    assert not (tmp_path / "outside.png").exists()


def test_a_partial_file_symlinked_out_of_the_root_is_refused(server, tmp_path):
    """`<path>.partial` is opened for append (resume): a planted symlink there used to write outside the root."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    (tmp_path / "root/sub").mkdir(parents=True)
    (tmp_path / "root/sub/f0.bin.partial").symlink_to(outside)
    with pytest.raises(InputFileError, match=r"f0\.bin\.partial resolves outside the data root"):
        download_files([entry(server, "f0.bin")], tmp_path / "root", **FAST)
    assert outside.read_text() == "keep" and server.requests == []
