"""No test reaches past this machine, with a network or without. Imported by conftest before
anything that imports the Hub clients, which read these variables once, at import; the
commands the tests start inherit them."""

from __future__ import annotations

import ipaddress
import os
import sys

os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


def refuse_the_internet(event: str, args: tuple) -> None:
    """In the test process, a connection to any address but this machine's fails at once."""
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
        try:
            local = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise ConnectionRefusedError(f"the tests stay on this machine, not {host}")


sys.addaudithook(refuse_the_internet)
