"""`newsmon serve`: the real command in a subprocess, answering over HTTP on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.store import open_store
from pipelines.web_cli import DEFAULT_HOST, DEFAULT_PORT, add_serve_parser, cmd_serve

REPO = Path(__file__).resolve().parents[2]
# The same shape as pipelines/cli.py's parser: global --config/--store, then the subcommand.
RUNNER = """
import argparse, sys
from pipelines.web_cli import add_serve_parser
parser = argparse.ArgumentParser(prog="newsmon")
parser.add_argument("--config")
parser.add_argument("--store")
add_serve_parser(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="newsmon")
    top.add_argument("--config")
    top.add_argument("--store")
    add_serve_parser(top.add_subparsers(dest="command", required=True))
    return top


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_arguments_and_defaults():
    args = parser().parse_args(["serve"])
    assert (args.host, args.port, args.root_path, args.func) == (DEFAULT_HOST, DEFAULT_PORT, "", cmd_serve)
    args = parser().parse_args(["--store", "sqlite:///x.db", "serve", "--port", "9000", "--host", "0.0.0.0"])
    assert (args.store, args.port, args.host) == ("sqlite:///x.db", 9000, "0.0.0.0")


def test_serve_rejects_a_bad_port(capsys):
    args = parser().parse_args(["serve", "--port", "70000"])
    assert cmd_serve(args) == 2
    assert "--port 70000" in capsys.readouterr().err


def test_serve_answers_over_http_until_interrupted(filled):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "--store", filled.store_url, "--config", str(filled.config_dir),
         "serve", "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 20
        while health is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
                    health = json.loads(response.read())
            except OSError:
                time.sleep(0.1)
        assert health is not None, f"serve did not answer; stderr: {process.stderr.read() if process.poll() else ''}"
        store = open_store(filled.store_url)
        try:
            assert health["articles"] == store.count_articles()
        finally:
            store.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            page = response.read().decode()
            assert 'src="/static/app.js?v=' in page
            assert "script-src 'self'" in response.headers["content-security-policy"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _out, err = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("serve did not stop on Ctrl-C")
    assert process.returncode == 0, err
    assert f"http://localhost:{port}/" in err


def test_serve_on_a_busy_port_is_one_line_exit_1(filled, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-c", RUNNER, "--store", filled.store_url, "--config",
                                 str(filled.config_dir), "serve", "--port", str(port)],
                                cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "dashboard on" not in result.stderr


def test_serve_refuses_a_store_file_that_does_not_exist(filled, tmp_path):
    missing = tmp_path / "typo.db"
    result = subprocess.run([sys.executable, "-c", RUNNER, "--store", f"sqlite:///{missing}", "--config",
                             str(filled.config_dir), "serve", "--port", str(free_port())],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert str(missing) in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not missing.exists()
