"""What a CLI command talks to: a driver loaded in this process, or a server by URL.

Both are used the same way, `target.call("SR.scan", sr=...)`, so every command works locally and remotely.
"""

from __future__ import annotations

from typing import Any, Optional


class Target:
    def call(self, wire_name: str, **args: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class LocalTarget(Target):
    """A driver in this process, called through the same dispatcher as every transport."""

    def __init__(self, driver_spec: str, api: str = "storage"):
        from smapi.core.driver import load_driver

        self.driver = load_driver(driver_spec)
        self.api = api

    def call(self, wire_name: str, **args: Any) -> Any:
        return self.driver.call(self.api, wire_name, **args)


class RemoteTarget(Target):
    """A server (XML-RPC, JSON-RPC or a plugin directory) reached through `smapi.client`."""

    def __init__(self, url: str, api: str = "storage"):
        from smapi.rpc.client import connect

        self.url = url
        self.client = connect(url, api=api)

    def call(self, wire_name: str, **args: Any) -> Any:
        iface, verb = wire_name.split(".", 1)
        try:
            return getattr(getattr(self.client, iface), verb)(**args)
        except (ConnectionError, FileNotFoundError, TimeoutError) as e:
            # a bare "[Errno 111] Connection refused" does not say what was refused
            raise ConnectionError(f"cannot reach {self.url}: {e.strerror or e}; is the server running "
                                  f"(smapi serve ...)?") from None


def make_target(driver: Optional[str], url: Optional[str], api: str = "storage") -> Target:
    if url:
        return RemoteTarget(url, api)
    if driver:
        return LocalTarget(driver, api)
    raise ValueError("give --driver (a driver in this process) or --url (a running server)")
