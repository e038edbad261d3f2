"""A small stdlib fake of the Hugging Face Hub HTTP API, enough for `huggingface_hub` uploads (create_repo, preupload,
LFS basic transfer, commit, Space variables) and downloads (resolve, tree, paths-info, repo info), served on 127.0.0.1
for tests.

    server, url = serve(0, tmp_path)        # then HF_ENDPOINT=url HF_TOKEN=hf_fake HF_HUB_DISABLE_XET=1
    ...
    server.shutdown()
Files live under `root/<type>s/<owner>/<name>/` (one revision, `main`); LFS objects under `root/lfs/<sha256>`.
"""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".parquet", ".arrow", ".png", ".jpg", ".zip", ".npz")


class FakeHub:
    def __init__(self, root):
        self.root = Path(root)
        self.lock = threading.Lock()
        self.commits = {}

    def repo_dir(self, kind, repo_id):
        return self.root / f"{kind}s" / repo_id

    def space_variables_path(self, repo_id):
        """Where a Space's variables (`HfApi.add_space_variable`) are kept: outside its files, as on the Hub."""
        return self.root / "space-variables" / f"{repo_id.replace('/', '--')}.json"

    def commit_id(self, kind, repo_id):
        return self.commits.get((kind, repo_id), "0" * 40)


def _handler(hub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status, body=b"", headers=None, content_type="application/json"):
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _repo(self, path):
            """(kind, repo_id, rest) from /api/{models,datasets,spaces}/owner/name/rest."""
            match = re.match(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(/.*)?$", path)
            if not match:
                return None
            return match.group(1)[:-1], unquote(match.group(2)), match.group(3) or ""

        def do_GET(self):
            self._get()

        def do_HEAD(self):
            self._get()

        def _get(self):
            url = urlparse(self.path)
            path = url.path
            if path == "/api/whoami-v2":
                return self._send(200, {"type": "user", "name": "tester", "orgs": [], "auth": {"accessToken": {"role": "write"}}})
            if path.startswith("/api/agent-harnesses"):
                return self._send(200, {"standardEnvVars": [], "harnesses": {}})
            resolve = re.match(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if resolve:
                kind = (resolve.group(1) or "models")[:-1]
                repo_id, filename = unquote(resolve.group(2)), unquote(resolve.group(4))
                return self._resolve(kind, repo_id, filename)
            repo = self._repo(path)
            if repo is None:
                return self._send(404, {"error": "not found"}, {"X-Error-Code": "RepoNotFound"})
            kind, repo_id, rest = repo
            folder = hub.repo_dir(kind, repo_id)
            if not folder.is_dir():
                return self._send(404, {"error": f"{repo_id} not found"}, {"X-Error-Code": "RepoNotFound"})
            tree = re.match(r"/tree/([^/]+)/?(.*)$", rest)
            if tree:
                recursive = parse_qs(url.query).get("recursive", ["false"])[0].lower() == "true"
                if not (folder / unquote(tree.group(2))).exists():
                    return self._send(404, {"error": "entry not found"}, {"X-Error-Code": "EntryNotFound"})
                return self._send(200, self._tree(folder, unquote(tree.group(2)), recursive))
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            return self._send(200, {
                "id": repo_id, "modelId": repo_id, "sha": hub.commit_id(kind, repo_id), "private": False,
                "siblings": [{"rfilename": p.relative_to(folder).as_posix()} for p in files], "tags": [],
                "lastModified": "2026-01-01T00:00:00.000Z", "cardData": {}, "gated": False, "disabled": False,
                "downloads": 0, "likes": 0, "author": repo_id.split("/")[0]})

        def _entry(self, folder, path):
            relative = path.relative_to(folder).as_posix()
            if path.is_dir():
                return {"type": "directory", "path": relative, "oid": "0" * 40}
            data = path.read_bytes()
            entry = {"type": "file", "path": relative, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            if relative.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
            return entry

        def _tree(self, folder, sub, recursive):
            base = folder / sub
            children = base.rglob("*") if recursive else base.iterdir()
            return [self._entry(folder, p) for p in sorted(children)]

        def _resolve(self, kind, repo_id, filename):
            path = hub.repo_dir(kind, repo_id) / filename
            if not hub.repo_dir(kind, repo_id).is_dir():
                return self._send(404, {"error": "repo not found"}, {"X-Error-Code": "RepoNotFound"})
            if not path.is_file():
                return self._send(404, {"error": "entry not found"}, {"X-Error-Code": "EntryNotFound"})
            data = path.read_bytes()
            etag = hashlib.sha256(data).hexdigest() if filename.endswith(LFS_SUFFIXES) else hashlib.sha1(data).hexdigest()
            headers = {"X-Repo-Commit": hub.commit_id(kind, repo_id), "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
            if filename.endswith(LFS_SUFFIXES):
                headers["X-Linked-Etag"] = f'"{etag}"'
                headers["X-Linked-Size"] = str(len(data))
            self._send(200, data, headers, content_type="application/octet-stream")

        def do_POST(self):
            path = urlparse(self.path).path
            body = self._body()
            if path == "/api/repos/create":
                request = json.loads(body)
                kind = request.get("type") or "model"
                repo_id = f"{request.get('organization') or 'tester'}/{request['name']}"
                folder = hub.repo_dir(kind, repo_id)
                if folder.is_dir():
                    return self._send(409, {"error": "You already created this repo", "url": f"/{repo_id}"})
                folder.mkdir(parents=True)
                return self._send(200, {"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
            if path == "/api/validate-yaml":
                return self._send(200, {"errors": [], "warnings": []})
            lfs = re.match(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+?)(?:\.git)?/info/lfs/objects/batch$", path)
            if lfs:
                request = json.loads(body)
                objects = []
                for item in request["objects"]:
                    entry = {"oid": item["oid"], "size": item["size"]}
                    if not (hub.root / "lfs" / item["oid"]).is_file():
                        entry["actions"] = {"upload": {"href": f"http://{self.headers['Host']}/lfs-upload/{item['oid']}"}}
                    objects.append(entry)
                return self._send(200, {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")
            repo = self._repo(path)
            if repo is None:
                return self._send(404, {"error": "not found"})
            kind, repo_id, rest = repo
            if rest.startswith("/preupload/"):
                files = json.loads(body)["files"]
                return self._send(200, {"files": [
                    {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                     "shouldIgnore": False} for f in files]})
            if rest.startswith("/paths-info/"):
                folder = hub.repo_dir(kind, repo_id)
                fields = parse_qs(body.decode()) if body and not body.startswith(b"{") else {}
                paths = fields.get("paths") or (json.loads(body).get("paths", []) if body.startswith(b"{") else [])
                return self._send(200, [self._entry(folder, folder / p) for p in paths if (folder / p).exists()])
            if rest.startswith("/commit/"):
                return self._commit(kind, repo_id, body)
            if kind == "space" and rest == "/variables":  # kept beside the repositories, as the Hub's settings
                request = json.loads(body)
                with hub.lock:
                    path = hub.space_variables_path(repo_id)
                    variables = json.loads(path.read_text()) if path.is_file() else {}
                    variables[request["key"]] = {"value": request["value"], "description": request.get("description")}
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(variables))
                return self._send(200, variables)
            return self._send(404, {"error": "not found"})

        def _commit(self, kind, repo_id, body):
            folder = hub.repo_dir(kind, repo_id)
            if not folder.is_dir():
                return self._send(404, {"error": "repo not found"}, {"X-Error-Code": "RepoNotFound"})
            with hub.lock:
                for line in body.decode().splitlines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    value = item["value"]
                    target = folder / value.get("path", "")
                    if item["key"] == "file":
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(base64.b64decode(value["content"]))
                    elif item["key"] == "lfsFile":
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes((hub.root / "lfs" / value["oid"]).read_bytes())
                    elif item["key"] in ("deletedFile", "deletedFolder"):
                        if target.is_file():
                            target.unlink()
                commit = hashlib.sha1(body + str(len(hub.commits)).encode()).hexdigest()
                hub.commits[(kind, repo_id)] = commit
            self._send(200, {"commitUrl": f"http://{self.headers['Host']}/{repo_id}/commit/{commit}",
                             "commitOid": commit, "success": True})

        def do_PUT(self):
            match = re.match(r"/lfs-upload/([0-9a-f]+)$", urlparse(self.path).path)
            if not match:
                return self._send(404, {"error": "not found"})
            data = self._body()
            if hashlib.sha256(data).hexdigest() != match.group(1):
                return self._send(400, {"error": "sha256 mismatch"})
            (hub.root / "lfs").mkdir(parents=True, exist_ok=True)
            (hub.root / "lfs" / match.group(1)).write_bytes(data)
            self._send(200, {})

    return Handler


def serve(port, root):
    """Start the fake Hub on 127.0.0.1:`port` (0 = any free port) in a daemon thread; returns (server, url)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(FakeHub(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
