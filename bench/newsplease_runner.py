"""Runs inside var/bench-venv (news-please's own venv), never in the project venv.

stdin: JSON {"pages": [{"id", "url", "path"}]} (path: a .html or .html.gz file).
stdout: one JSON line per page {"id", "text", "cpu"}, then {"done": true, ...}.
Only the standard library and news-please are imported here: the project is not installed in that venv.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import re
import socket
import sys
import time
import warnings

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})""", re.I)


def _loopback_only() -> None:
    """The peer gets no network: any connection or name lookup off this machine is refused
    (newspaper's tldextract would otherwise try to download the public suffix list)."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def is_local(host: object) -> bool:
        try:
            return ipaddress.ip_address(str(host).strip("[]")).is_loopback
        except ValueError:
            return str(host) == "localhost"

    def connect(self, address):  # type: ignore[no-untyped-def]
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(host):
            raise OSError(f"benchmark: no network for the peer ({host})")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host is not None and not is_local(host):
            raise socket.gaierror(socket.EAI_NONAME, f"benchmark: no name lookups for the peer ({host})")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


def _decode(raw: bytes) -> str:
    found = _META_CHARSET.search(raw[:4096])
    encoding = found.group(1).decode("ascii") if found else "utf-8"
    try:
        return raw.decode(encoding, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def main() -> int:
    _loopback_only()
    warnings.simplefilter("ignore")
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=())  # the bundled suffix list, no download
    from importlib.metadata import version

    from newsplease import NewsPlease

    request = json.load(sys.stdin)
    total_cpu, started = 0.0, time.perf_counter()
    failures = 0
    for page in request["pages"]:
        path = page["path"]
        with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as fh:
            html = _decode(fh.read())
        cpu = time.process_time()
        try:
            article = NewsPlease.from_html(html, url=page["url"], fetch_images=False)
            text = (article.maintext or "") if article is not None else ""
        except Exception:  # a page the peer cannot handle scores zero, as it would for us
            text, failures = "", failures + 1
        spent = time.process_time() - cpu
        total_cpu += spent
        print(json.dumps({"id": page["id"], "text": text, "cpu": spent}, ensure_ascii=False), flush=True)
    print(json.dumps({"done": True, "cpu": total_cpu, "wall": time.perf_counter() - started,
                      "failures": failures, "version": version("news-please")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
