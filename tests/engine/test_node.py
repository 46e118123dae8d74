"""The test engine helper: port line, readiness check, stop by stdin close, and every way a start fails.

The helper's own logic runs against small Python launchers (no Java needed); one test starts the
real OpenSearch node when the launcher is built (scripts/test-engine.sh builds it first)."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.engine import node

# A stand-in launcher: answers GET / on 127.0.0.1, prints the port line, stops when stdin closes.
FAKE = """
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
MODE = {mode!r}
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"name": "fake", "version": {{"number": "0"}}}} if MODE != "no-info" else [1]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("starting", flush=True)
if MODE == "die":
    print("boom: no node", file=sys.stderr, flush=True); sys.exit(7)
if MODE == "silent":  # never ready, but leaves when stdin closes, as the real launcher does
    sys.stdin.read(); sys.exit(0)
print("NEWSMON_ENGINE_PORT=" + ("x1" if MODE == "bad-port" else str(server.server_address[1])), flush=True)
if MODE == "deaf":
    import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)
sys.stdin.read()
print("closing", flush=True)
"""


def fake(tmp_path: Path, mode: str = "ok") -> list[str]:
    script = tmp_path / f"fake_{mode}.py"
    script.write_text(textwrap.dedent(FAKE.format(mode=mode)), encoding="utf-8")
    return [sys.executable, str(script)]


def test_start_waits_for_the_port_line_and_stop_closes_stdin(tmp_path):
    engine = node.start(tmp_path / "run", command=fake(tmp_path), timeout=30)
    try:
        with urllib.request.urlopen(engine.url + "/", timeout=10) as response:
            assert json.loads(response.read())["name"] == "fake"
    finally:
        code = node.stop(engine, grace=10)
    assert code == 0  # it left on its own: stdin closed, no signal needed


def test_a_launcher_that_ignores_stdin_and_sigterm_is_killed(tmp_path):
    engine = node.start(tmp_path / "run", command=fake(tmp_path, "deaf"), timeout=30)
    assert node.stop(engine, grace=0.5) == -9
    assert engine.process.poll() is not None


def test_a_launcher_that_dies_is_reported_with_its_exit_code_and_log(tmp_path):
    with pytest.raises(node.EngineError, match=r"exited \(code 7\) before printing its port(.|\n)*boom: no node"):
        node.start(tmp_path / "run", command=fake(tmp_path, "die"), timeout=30)


def test_a_silent_launcher_hits_the_hard_timeout_and_is_stopped(tmp_path):
    with pytest.raises(node.EngineError, match=r"no NEWSMON_ENGINE_PORT= line within 2 s"):
        node.start(tmp_path / "run", command=fake(tmp_path, "silent"), timeout=2)


@pytest.mark.parametrize(("mode", "message"), [("bad-port", r"bad port line: 'NEWSMON_ENGINE_PORT=x1'"),
                                               ("no-info", r"GET / answered no node info")])
def test_a_bad_port_line_or_a_bad_root_answer_fails_the_start(tmp_path, mode, message):
    with pytest.raises(node.EngineError, match=message):
        node.start(tmp_path / "run", command=fake(tmp_path, mode), timeout=30)


def test_the_command_form_passes_the_url_and_the_exit_code(tmp_path, monkeypatch):
    seen = tmp_path / "seen.txt"
    real_start = node.start

    def fake_start(base_dir, **kwargs):
        return real_start(base_dir, command=fake(tmp_path), timeout=30)

    monkeypatch.setattr(node, "start", fake_start)
    code = node.main(["--env", "ENGINE_URL_FOR_TEST", "--", sys.executable, "-c",
                      f"import os, sys; open({str(seen)!r}, 'w').write(os.environ['ENGINE_URL_FOR_TEST']); sys.exit(4)"])
    assert code == 4
    assert seen.read_text().startswith("http://127.0.0.1:")


real_node = pytest.mark.skipif(
    not (shutil.which("java") and shutil.which("mvn") and node._classpath()),
    reason="the test engine launcher is not built (scripts/test-engine.sh builds it; needs java and mvn)")


def request(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"{}")


@real_node
@pytest.mark.slow
def test_the_real_node_serves_the_articles_analysis_and_refuses_wildcard_deletes(tmp_path):
    template = json.loads((node.REPO / "config" / "elasticsearch" / "articles-template.json").read_text())
    analysis = template["template"]["settings"]["analysis"]
    with node.running_node(tmp_path) as engine:
        status, headers, info = request(engine.url + "/")
        assert status == 200 and info["version"]["distribution"] == "opensearch", info
        assert headers.get("X-Elastic-Product") == "Elasticsearch"
        status, _, answer = request(engine.url + "/probe-1", "PUT", {"settings": {"analysis": analysis}})
        assert status == 200, answer
        status, _, answer = request(engine.url + "/probe-1/_analyze", "POST",
                                    {"analyzer": "newsmon_english", "text": "The minister's Café reforms"})
        assert status == 200, answer
        assert [t["token"] for t in answer["tokens"]] == ["the", "minist", "cafe", "reform"]
        status, _, answer = request(engine.url + "/probe-*", "DELETE")
        assert status == 400 and "Wildcard" in json.dumps(answer), answer  # as on Elasticsearch 8+
        process = engine.process
    assert process.returncode == 0  # stopped by its stdin closing
