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
    """Serves one payload with HTTP Range support; can cut the first transfer."""

    def __init__(self, payload, cut_first=False):
        self.payload, self.cut_first, self.requests = payload, cut_first, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                start = 0
                if "Range" in self.headers:
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                outer.requests.append(start)
                body = outer.payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_first and len(outer.requests) == 1:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/PBC.zip"

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
