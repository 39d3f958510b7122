"""A local stand-in for the Hugging Face hub's HTTP interface, for download tests without internet.

Only what `huggingface_hub.snapshot_download` (0.36) calls for datasets and models:
- GET  /api/{datasets|models}/{repo}/revision/{rev}: repo info, `sha` and `siblings`;
- HEAD /{datasets/}{repo}/resolve/{rev}/{file}: `X-Repo-Commit`, `ETag`, `Content-Length`;
- GET  the same URL: the bytes, honouring `Range: bytes=N-` (huggingface_hub resumes partial files so).
A repository answers only at its own commit (and `main`), so a client asking for another revision gets
404 like the hub would. Every request is recorded; the server answers at most `max_requests` and shuts
itself down after `lifetime_s`, so a test that goes wrong cannot hang or hammer it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass
class StubRepo:
    sha: str
    files: dict[str, bytes]


@dataclass
class HubStub:
    repos: dict[tuple[str, str], StubRepo] = field(default_factory=dict)  # (kind, repo id) -> repo
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range header
    failing: set[str] = field(default_factory=set)  # file names whose GET answers 500
    max_requests: int = 400
    lifetime_s: float = 300.0

    def add(self, kind: str, repo_id: str, sha: str, folder: Path) -> None:
        """Serve every file under `folder` as repository `repo_id` ("datasets" or "models") at commit `sha`."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        self.repos[(kind, repo_id)] = StubRepo(sha, files)

    def start(self) -> str:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                stub.handle(self, head=False)

            def do_HEAD(self):
                stub.handle(self, head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.timer = threading.Timer(self.lifetime_s, self.stop)
        self.timer.daemon = True
        self.timer.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    def file_requests(self) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if "/resolve/" in r[1]]

    def _repo(self, kind: str, repo_id: str, rev: str) -> StubRepo | None:
        repo = self.repos.get((kind, repo_id))
        return repo if repo is not None and rev in (repo.sha, "main") else None

    def handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        self.requests.append(("HEAD" if head else "GET", path, h.headers.get("Range")))
        if len(self.requests) > self.max_requests:
            return self._send(h, 429, b"too many requests", head)
        m = re.fullmatch(r"/api/(datasets|models)/(.+)/revision/([^/]+)", path)
        if m:
            repo = self._repo(m[1], m[2], m[3])
            if repo is None:
                return self._send(
                    h, 404, b'{"error": "Revision Not Found"}', head, {"X-Error-Code": "RevisionNotFound"}
                )
            siblings = [{"rfilename": name} for name in repo.files]
            body = json.dumps({"id": m[2], "sha": repo.sha, "siblings": siblings, "private": False}).encode()
            return self._send(h, 200, body, head, {"Content-Type": "application/json"})
        m = re.fullmatch(r"/(datasets/)?(.+?/.+?)/resolve/([^/]+)/(.+)", path)
        if m:
            repo = self._repo("datasets" if m[1] else "models", m[2], m[3])
            data = repo.files.get(m[4]) if repo else None
            if data is None:
                return self._send(h, 404, b"not found", head, {"X-Error-Code": "EntryNotFound"})
            if not head and m[4] in self.failing:
                return self._send(h, 500, b"stub failure", head)
            headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
            start = 0
            rng = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")
            if rng and not head:
                start = int(rng[1])
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(h, 206 if start else 200, data[start:], head, headers)
        self._send(h, 404, b"unknown endpoint", head)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes, head: bool, headers: dict | None = None) -> None:
        h.send_response(code)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)
