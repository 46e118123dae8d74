"""The one settings resolver: every CLI command, the dashboard and the Airflow plugin ask it.

Precedence, first value that is set wins (documented once, in README.md, "Settings"):

1. the command-line flag (``--store``, ``--config``),
2. the Airflow Variable (only under Airflow: the caller passes ``variable=``),
3. the environment variable,
4. ``config/newsmon.yaml`` (only settings that have a key there, e.g. ``store:``),
5. the Airflow connection (only under Airflow: the caller passes ``connection=``; the store only),
6. the default.

No Airflow import here (pipelines/ never imports Airflow): plugins/newsmon_settings.py injects
the Variable and connection lookups as callables. An empty string counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_DIR = "config"
DEFAULT_STORE_URL = "sqlite:///var/newsmon.db"

Variable = Callable[[str], Any]  # Variable name -> value, None when unset (or unreadable)
Connection = Callable[[], Any]  # -> the connection object, None when not defined


@dataclass(frozen=True)
class Setting:
    variable: str | None  # Airflow Variable name
    env: str | None  # environment variable name
    yaml_key: str | None  # key in newsmon.yaml
    default: Any


SETTINGS: dict[str, Setting] = {
    "config_dir": Setting("newsmon_config_dir", "NEWSMON_CONFIG", None, DEFAULT_CONFIG_DIR),
    "store": Setting("newsmon_store_url", "NEWSMON_STORE", "store", DEFAULT_STORE_URL),
    "allow_networks": Setting("newsmon_allow_networks", "NEWSMON_ALLOW_NETWORKS", None, None),
    # Alert channels' own allow-list (netguard.ENV_CHANNEL_ALLOW), apart from the fetcher's on purpose.
    "channel_allow_networks": Setting("newsmon_channel_allow_networks", "NEWSMON_CHANNEL_ALLOW_NETWORKS", None, None),
    "digest_dir": Setting("newsmon_digest_dir", "NEWSMON_DIGEST_DIR", None, "var/digests"),
}

_UNSET = object()


@dataclass(frozen=True)
class Resolved:
    value: Any
    source: str  # "flag", "variable", "env", "yaml", "connection" or "default"


def _set(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _clean(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def yaml_value(config_dir: str | os.PathLike[str], key: str) -> Any:
    """`key` of <config_dir>/newsmon.yaml; None when the file is missing or unreadable (the config
    loader reports a broken file with its line; the resolver only ranks the value)."""
    try:
        from pipelines.config import parse_yaml  # the one loader of config files, with its limits

        with open(Path(config_dir) / "newsmon.yaml", encoding="utf-8") as fh:
            data = parse_yaml(fh)
    except Exception:
        return None
    return data.get(key) if isinstance(data, dict) else None


def resolve(name: str, *, flag: Any = None, variable: Variable | None = None, config_dir: Any = None,
            yaml: Any = _UNSET, connection: Connection | None = None, default: Any = _UNSET) -> Resolved:
    """The value of setting `name` and where it came from, by the precedence above.

    config_dir: where newsmon.yaml is (default: the resolved config_dir; False skips the file);
    yaml: the newsmon.yaml value when the caller has loaded it already (skips reading the file)."""
    spec = SETTINGS[name]
    if _set(flag):
        return Resolved(_clean(flag), "flag")
    if variable is not None and spec.variable:
        try:
            value = variable(spec.variable)
        except Exception:  # no Airflow context, API server unreachable: the next step decides
            value = None
        if _set(value):
            return Resolved(_clean(value), "variable")
    if spec.env and _set(os.environ.get(spec.env)):
        return Resolved(_clean(os.environ[spec.env]), "env")
    if spec.yaml_key:
        if yaml is _UNSET and config_dir is not False:
            if config_dir is None:
                config_dir = resolve("config_dir", variable=variable).value
            yaml = yaml_value(config_dir, spec.yaml_key)
        if yaml is not _UNSET and _set(yaml):
            return Resolved(_clean(yaml), "yaml")
    if connection is not None:
        conn = connection()
        if conn is not None:
            return Resolved(conn, "connection")
    return Resolved(spec.default if default is _UNSET else default, "default")


def config_dir(flag: str | None = None, variable: Variable | None = None) -> str:
    """The config directory: --config, Variable newsmon_config_dir, NEWSMON_CONFIG, ./config."""
    return resolve("config_dir", flag=flag, variable=variable).value


def store_url(flag: str | None = None, *, config_dir: Any = None, yaml: Any = _UNSET,
              variable: Variable | None = None) -> str:
    """The store URL: --store, Variable newsmon_store_url, NEWSMON_STORE, newsmon.yaml's store:, the
    SQLite default. (The Airflow connection step is the plugin's: it needs a store object, not a URL.)"""
    return resolve("store", flag=flag, variable=variable, config_dir=config_dir, yaml=yaml).value


def allow_networks(flag: str | None = None, variable: Variable | None = None) -> str | None:
    """CIDRs the fetcher may reach besides public addresses: Variable newsmon_allow_networks, then
    NEWSMON_ALLOW_NETWORKS; None when neither is set."""
    return resolve("allow_networks", flag=flag, variable=variable).value


def channel_allow_networks(flag: str | None = None, variable: Variable | None = None) -> str | None:
    """CIDRs alert channels may reach besides what netguard's channel policy allows (link-local and
    metadata addresses are refused otherwise): Variable newsmon_channel_allow_networks, then
    NEWSMON_CHANNEL_ALLOW_NETWORKS; None when neither is set."""
    return resolve("channel_allow_networks", flag=flag, variable=variable).value
