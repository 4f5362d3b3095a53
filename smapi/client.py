"""`smapi.client.connect(url)`: the public name of the client of every transport (see `smapi.rpc.client`)."""

from smapi.rpc.client import Client, connect

__all__ = ["Client", "connect"]
