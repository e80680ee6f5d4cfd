"""fetch_pbc against a local HTTP server on 127.0.0.1; no test touches the internet."""

import hashlib
import io
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from leukosk.datasets import fetch_pbc

COUNTS = {"basophil": 3, "eosinophil": 3, "platelet": 3}


def make_zip(folder, extra=None):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.jpg")):
            archive.write(path, f"PBC_dataset_normal_DIB/{path.relative_to(folder)}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


class Server:
    """Serves one payload with HTTP Range support, or misbehaves on request.

    ``mode`` says how: ``"cut_first"`` cuts the first transfer (with
    Content-Length), ``"cut_no_length"`` cuts it and never sends
    Content-Length, ``"ignore_range"`` always answers 200 with everything,
    ``"wrong_range"`` answers a resumption with bytes from another offset,
    ``"stall_first"`` sends half then stops sending without closing.
    """

    def __init__(self, payload, mode=None, cut_first=False):
        self.payload, self.requests = payload, []
        self.mode = "cut_first" if cut_first else mode
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.handle(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/PBC.zip"

    def handle(self, handler):
        start = 0
        if "Range" in handler.headers:
            start = int(handler.headers["Range"].split("=")[1].split("-")[0])
        self.requests.append(start)
        first, mode, size = len(self.requests) == 1, self.mode, len(self.payload)
        if mode == "ignore_range":
            start = 0
        if start >= size and start:
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{size}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        served = max(start - 7, 0) if mode == "wrong_range" and start else start
        body = self.payload[served:]
        handler.send_response(206 if start else 200)
        if start:
            handler.send_header("Content-Range", f"bytes {served}-{size - 1}/{size}")
        if mode != "cut_no_length":
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if first and mode in ("cut_first", "cut_no_length"):
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        if first and mode == "stall_first":
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            time.sleep(3)
            handler.close_connection = True
            return
        handler.wfile.write(body)
        if mode == "cut_no_length":
            handler.close_connection = True

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_extract_load_and_reuse(pbc_folder, tmp_path):
    home = tmp_path / "home"
    with Server(make_zip(pbc_folder)) as server:
        data = fetch_pbc(home, url=server.url, expected_counts=COUNTS,
                         image_size=32, verbose=False, cache=False)
        assert server.requests == [0]
    assert data.images.shape == (9, 32, 32, 3)
    assert sorted(set(data.target)) == sorted(COUNTS)
    assert (home / "PBC_dataset_normal_DIB" / "basophil").is_dir()
    assert not [p for p in home.iterdir() if p.name.startswith(".pbc-extract")]
    # second call: no server at all, the extracted folder is used
    again = fetch_pbc(home, url="http://127.0.0.1:9/unused", expected_counts=COUNTS,
                      verbose=False, cache=False)
    assert len(again.target) == 9


def test_cut_transfer_resumes_with_range(pbc_folder, tmp_path):
    home = tmp_path / "home"
    payload = make_zip(pbc_folder)
    with Server(payload, cut_first=True) as server:
        data = fetch_pbc(home, url=server.url, expected_counts=COUNTS,
                         verbose=False, cache=False)
    assert server.requests[0] == 0 and server.requests[1] > 0  # resumed, not restarted
    assert len(server.requests) == 2
    assert (home / "PBC_dataset_normal_DIB.zip").read_bytes() == payload
    assert len(data.target) == 9


def test_sha256_is_checked(pbc_folder, tmp_path):
    home = tmp_path / "home"
    payload = make_zip(pbc_folder)
    with Server(payload) as server:
        with pytest.raises(ValueError, match="SHA-256"):
            fetch_pbc(home, url=server.url, sha256="0" * 64,
                      expected_counts=COUNTS, verbose=False)
        assert not (home / "PBC_dataset_normal_DIB").exists()
        assert (home / "PBC_dataset_normal_DIB.zip.bad").is_file()
        good = hashlib.sha256(payload).hexdigest()
        data = fetch_pbc(home, url=server.url, sha256=good,
                         expected_counts=COUNTS, verbose=False, cache=False)
    assert len(data.target) == 9


def test_content_is_verified(pbc_folder, tmp_path):
    home = tmp_path / "home"
    with Server(make_zip(pbc_folder)) as server:
        with pytest.raises(ValueError, match="basophil: 3 \\(expected 1218\\)"):
            fetch_pbc(home, url=server.url, verbose=False)  # real PBC counts
    assert not (home / "PBC_dataset_normal_DIB").exists()


def test_members_escaping_the_folder_are_refused(pbc_folder, tmp_path):
    evil = make_zip(pbc_folder, extra={"../../escaped.txt": b"gotcha"})
    home = tmp_path / "home"
    with Server(evil) as server:
        with pytest.raises(ValueError, match="outside"):
            fetch_pbc(home, url=server.url, expected_counts=COUNTS, verbose=False)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (home / "PBC_dataset_normal_DIB").exists()


def test_offline_fails_fast_with_instructions(tmp_path):
    home = tmp_path / "home"
    start = time.perf_counter()
    with pytest.raises(ConnectionError) as info:
        fetch_pbc(home, url="http://127.0.0.1:9/PBC.zip", timeout=5, verbose=False)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "load_pbc(" in message and "10.17632/snkd93bnjr.1" in message
    assert np.all([not p.name.endswith(".zip") for p in home.iterdir()])


ARCHIVE = "PBC_dataset_normal_DIB.zip"


def test_cut_without_content_length_is_not_taken_as_complete(pbc_folder, tmp_path):
    home = tmp_path / "home"
    payload = make_zip(pbc_folder)
    with Server(payload, mode="cut_no_length") as server:
        data = fetch_pbc(home, url=server.url, expected_counts=COUNTS,
                         verbose=False, cache=False)
    assert len(server.requests) == 2 and server.requests[1] == len(payload) // 2
    assert (home / ARCHIVE).read_bytes() == payload
    assert len(data.target) == 9


def test_complete_part_file_is_used_after_416(pbc_folder, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    payload = make_zip(pbc_folder)
    (home / (ARCHIVE + ".part")).write_bytes(payload)
    with Server(payload) as server:
        data = fetch_pbc(home, url=server.url, expected_counts=COUNTS,
                         verbose=False, cache=False)
    assert server.requests == [len(payload)]
    assert len(data.target) == 9 and not (home / (ARCHIVE + ".part")).exists()


def test_oversized_part_file_starts_over(pbc_folder, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    payload = make_zip(pbc_folder)
    (home / (ARCHIVE + ".part")).write_bytes(payload + b"junk from another file")
    with Server(payload) as server:
        fetch_pbc(home, url=server.url, expected_counts=COUNTS, verbose=False, cache=False)
    assert server.requests == [len(payload) + 22, 0]
    assert (home / ARCHIVE).read_bytes() == payload


@pytest.mark.parametrize("mode", ["ignore_range", "wrong_range"])
def test_resumption_from_the_wrong_offset_is_not_appended(pbc_folder, tmp_path, mode):
    home = tmp_path / "home"
    home.mkdir()
    payload = make_zip(pbc_folder)
    (home / (ARCHIVE + ".part")).write_bytes(payload[:1000])
    with Server(payload, mode=mode) as server:
        data = fetch_pbc(home, url=server.url, expected_counts=COUNTS,
                         verbose=False, cache=False)
    assert (home / ARCHIVE).read_bytes() == payload
    assert len(data.target) == 9


def test_stalled_transfer_times_out_and_resumes(pbc_folder, tmp_path):
    home = tmp_path / "home"
    payload = make_zip(pbc_folder)
    with Server(payload, mode="stall_first") as server:
        data = fetch_pbc(home, url=server.url, expected_counts=COUNTS, timeout=1,
                         verbose=False, cache=False)
    assert server.requests[0] == 0 and server.requests[-1] > 0
    assert len(data.target) == 9


def test_concurrent_fetches_share_one_download(pbc_folder, tmp_path):
    home = tmp_path / "home"
    payload = make_zip(pbc_folder)
    results, errors = [], []

    def fetch(url):
        try:
            results.append(fetch_pbc(home, url=url, expected_counts=COUNTS,
                                     verbose=False, cache=False))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with Server(payload) as server:
        threads = [threading.Thread(target=fetch, args=(server.url,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and len(results) == 3
    assert server.requests == [0]
    assert (home / ARCHIVE).read_bytes() == payload


def test_zip_bomb_is_refused(pbc_folder, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("PBC_dataset_normal_DIB/basophil/BA_1.jpg", bytes(50 << 20))
    home = tmp_path / "home"
    with Server(buffer.getvalue()) as server:
        with pytest.raises(ValueError, match="would take 52,428,800 bytes"):
            fetch_pbc(home, url=server.url, expected_counts=COUNTS, verbose=False)
    assert not (home / "PBC_dataset_normal_DIB").exists()
    assert not list(home.glob(".pbc-extract-*"))
