"""`newsmon serve`: the desk dashboard on a local port (uvicorn), over the configured store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def add_serve_parser(subparsers: argparse._SubParsersAction,
                     parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve", parents=list(parents), help="serve the desk dashboard (alerts, search, stories, map) over HTTP",
        description="Serve the desk dashboard and its JSON API (/api, /openapi.json) over the configured store.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--root-path", default="",
                        help="URL prefix when served behind a reverse proxy under a sub-path, e.g. /newsmon")
    parser.set_defaults(func=cmd_serve)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    """Runs until Ctrl-C. Config and store come from --config/--store (else env, else defaults)."""
    if not 0 < args.port < 65536:
        print(f"newsmon: serve: --port {args.port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from pipelines.web.app import create_app
    except ImportError as exc:
        print(f"newsmon: serve needs FastAPI and uvicorn ({exc.name} is missing): "
              "pip install -c constraints.txt -e '.[airflow]'", file=sys.stderr)
        return 1
    app = create_app(store_url=getattr(args, "store", None), config_dir=getattr(args, "config", None))
    root_path = args.root_path.rstrip("/")
    shown_host = "localhost" if args.host in ("127.0.0.1", "::1") else args.host
    print(f"newsmon dashboard on http://{shown_host}:{args.port}{root_path}/  (Ctrl-C stops)", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, root_path=root_path, log_level="warning",
                    access_log=False, server_header=False, proxy_headers=False)
    finally:
        app.state.dashboard.close()
    return 0
