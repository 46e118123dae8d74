"""`newsmon serve`: the desk dashboard on a local port (uvicorn), over the configured store.

The dashboard has no login of its own: it answers only to loopback names, its --host and the
--allowed-host names (a DNS-rebinding page gets 421), and says so on stderr when it listens
beyond loopback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

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
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="a Host name the dashboard answers to besides localhost, 127.0.0.1, ::1 and --host, "
                             "e.g. the reverse proxy's public name (repeat it, or separate names by commas; "
                             "'*' answers to any name)")
    parser.add_argument("--root-path", default="",
                        help="URL prefix when served behind a reverse proxy under a sub-path, e.g. /newsmon")
    parser.set_defaults(func=cmd_serve)
    return parser


def allowed_hosts(host: str, extra: Sequence[str]) -> list[str]:
    """The Host names served: loopback, the bound address unless it is a wildcard, the --allowed-host
    names. ValueError (one line) for a name that is no host name or IP address (a URL, a port...)."""
    from pipelines.web.app import LOOPBACK_HOSTS, host_name

    names = list(LOOPBACK_HOSTS)
    if host not in ("", "0.0.0.0", "::") and host_name(host):
        names.append(host)
    for raw in extra:
        for name in (n.strip() for n in raw.split(",")):
            if name != "*" and host_name(name) is None:
                raise ValueError(f"--allowed-host {name!r} is not a host name or IP address "
                                 "(no scheme, port or path; '*' for any)")
            names.append(name)
    return names


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    """Runs until Ctrl-C. Config and store come from --config/--store (else env, else defaults)."""
    if not 0 < args.port < 65536:
        print(f"newsmon: serve: --port {args.port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
    try:
        args.allowed_hosts = allowed_hosts(args.host, getattr(args, "allowed_host", None) or [])
    except ValueError as exc:
        print(f"newsmon: serve: {exc}", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from pipelines.web.app import create_app
    except ImportError as exc:
        print(f"newsmon: serve needs FastAPI and uvicorn ({exc.name} is missing): "
              "pip install -c constraints.txt -e '.[airflow]'", file=sys.stderr)
        return 1
    from pipelines.errors import NewsmonError

    try:
        return _serve(args, uvicorn, create_app)
    except NewsmonError as exc:  # a missing store, a busy port: one line, exit 1 (also when called directly)
        print(f"newsmon: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace, uvicorn: Any, create_app: Any) -> int:
    import socket

    from pipelines.errors import NewsmonError

    app = create_app(store_url=getattr(args, "store", None), config_dir=getattr(args, "config", None),
                     create_store=False, allowed_hosts=getattr(args, "allowed_hosts", None)
                     or allowed_hosts(args.host, []))
    try:
        # Open the store now: a mistyped --store fails here (exit 1), not as a 503 on every request.
        app.state.dashboard.store()
        # Bind before saying we run: a busy port is one line and exit 1 (uvicorn itself would exit 3).
        try:
            family, kind, proto, _name, address = socket.getaddrinfo(
                args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise NewsmonError(f"serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise NewsmonError(f"serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
        root_path = args.root_path.rstrip("/")
        shown_host = "localhost" if args.host in ("127.0.0.1", "::1") else args.host
        if not is_loopback(args.host):
            print(f"newsmon: serve: warning: listening on {args.host}, beyond loopback, and the dashboard has "
                  f"no login: anyone who reaches port {args.port} reads it (put an authenticating proxy in "
                  "front, or use the Airflow plugin; Host names served: loopback, --host, --allowed-host)",
                  file=sys.stderr)
        print(f"newsmon dashboard on http://{shown_host}:{args.port}{root_path}/  (Ctrl-C stops)", file=sys.stderr)
        config = uvicorn.Config(app, host=args.host, port=args.port, root_path=root_path, log_level="warning",
                                access_log=False, server_header=False, proxy_headers=False)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl-C is how serve stops: exit 0, as uvicorn.run does
            pass
        except SystemExit as exc:  # uvicorn's own startup failures exit 3: ours are 0, 1 or 2
            if exc.code not in (None, 0):
                print(f"newsmon: serve: the server stopped (uvicorn exit {exc.code})", file=sys.stderr)
                return 1
        finally:
            sock.close()
    finally:
        app.state.dashboard.close()
    return 0
