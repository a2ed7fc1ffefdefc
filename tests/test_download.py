"""The LibriSpeech downloader against a real HTTP server on loopback: resume, checksum, skip."""
import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from hypervq_fairseq.data.download import ChecksumError, download_file, fetch_librispeech


class RangeServer(http.server.ThreadingHTTPServer):
    """Serves ``files`` (name -> bytes) with Range support; can drop a response part way."""

    def __init__(self, files):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files = files
        self.cut_after = None  # bytes to send before closing the connection (once)
        self.ranges = []  # Range header of every request, None when absent

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class RangeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        data = self.server.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        header = self.headers.get("Range")
        self.server.ranges.append(header)
        start = int(header.split("=")[1].split("-")[0]) if header else 0
        if start >= len(data):
            self.send_error(416)
            return
        body = data[start:]
        self.send_response(206 if header else 200)
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.cut_after is not None:
            body, self.server.cut_after = body[: self.server.cut_after], None
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = RangeServer({})
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _librispeech_tarball(subset, tiny_speech_corpus):
    """A real LibriSpeech-shaped archive: LibriSpeech/SUBSET/SPK/CH/*.flac + trans, from the tiny corpus."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        chapter = next((tiny_speech_corpus / "train-demo").glob("*/*"))
        for f in sorted(chapter.iterdir()):
            tar.add(f, arcname=f"LibriSpeech/{subset}/{chapter.parent.name}/{chapter.name}/{f.name}")
        readme = b"LibriSpeech test archive\n"
        info = tarfile.TarInfo("LibriSpeech/README.TXT")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return buf.getvalue()


def test_download_resumes_after_a_dropped_connection(server, tmp_path):
    data = bytes(range(256)) * 4000  # ~1 MB
    server.files["blob.bin"] = data
    server.cut_after = 300_000
    dest = tmp_path / "blob.bin"
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(ConnectionError, match="after 300000 of"):
        download_file(f"{server.url}/blob.bin", dest, sha256=digest, retries=0, progress=False)
    part = tmp_path / "blob.bin.part"
    assert not dest.exists() and part.stat().st_size == 300_000
    download_file(f"{server.url}/blob.bin", dest, sha256=digest, retries=0, progress=False)
    assert server.ranges[-1] == "bytes=300000-"
    assert dest.read_bytes() == data and not part.exists()


def test_download_retries_within_one_call(server, tmp_path):
    data = b"librispeech" * 50_000
    server.files["a.tar.gz"] = data
    server.cut_after = 123_457
    dest = download_file(f"{server.url}/a.tar.gz", tmp_path / "a.tar.gz",
                         sha256=hashlib.sha256(data).hexdigest(), retries=2, progress=False)
    assert dest.read_bytes() == data
    assert server.ranges == [None, "bytes=123457-"]


def test_checksum_mismatch_deletes_and_names_the_url(server, tmp_path):
    server.files["bad.tar.gz"] = b"x" * 1000
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumError, match=r"bad\.tar\.gz.*does not match.*" + wrong):
        download_file(f"{server.url}/bad.tar.gz", tmp_path / "bad.tar.gz", sha256=wrong, retries=0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_fetch_librispeech_unpacks_and_skips_present_subsets(server, tmp_path, tiny_speech_corpus):
    archive = _librispeech_tarball("dev-clean", tiny_speech_corpus)
    server.files["dev-clean.tar.gz"] = archive
    checksums = {"dev-clean": hashlib.sha256(archive).hexdigest()}
    status = fetch_librispeech(tmp_path, ["dev-clean"], base_url=server.url, checksums=checksums, progress=False)
    assert status == {"dev-clean": "downloaded"}
    flacs = list((tmp_path / "LibriSpeech" / "dev-clean").rglob("*.flac"))
    assert len(flacs) > 0 and list((tmp_path / "LibriSpeech" / "dev-clean").rglob("*.trans.txt"))
    assert (tmp_path / "LibriSpeech" / "README.TXT").exists()
    assert not (tmp_path / "dev-clean.tar.gz").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".extract")]
    requests = len(server.ranges)
    status = fetch_librispeech(tmp_path, ["dev-clean"], base_url=server.url, checksums=checksums, progress=False)
    assert status == {"dev-clean": "present"} and len(server.ranges) == requests


def test_fetch_librispeech_rejects_a_corrupt_archive(server, tmp_path, tiny_speech_corpus):
    archive = _librispeech_tarball("dev-other", tiny_speech_corpus)
    server.files["dev-other.tar.gz"] = archive[:-10] + b"0123456789"
    checksums = {"dev-other": hashlib.sha256(archive).hexdigest()}
    with pytest.raises(ChecksumError):
        fetch_librispeech(tmp_path, ["dev-other"], base_url=server.url, checksums=checksums, retries=0, progress=False)
    assert not (tmp_path / "LibriSpeech" / "dev-other").exists()
