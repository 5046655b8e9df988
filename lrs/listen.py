"""Serve on a socket that listens before the server says where to connect.

``uvicorn.run`` binds its socket only once the app is loaded (with one process, once its startup
has run): a line printed before it, "point your client at ...", was true a moment later, and a
script that connected as soon as it read the line was refused. Here the socket is bound and
listening first; a client that connects then waits in the kernel's queue until the server
accepts. The rest is what ``uvicorn.run`` does for one process or several.
"""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess


def serve_listening(config: uvicorn.Config, ready: Callable[[], None]) -> None:
    """Bind and listen on ``config``'s address, call ``ready``, then serve until stopped."""
    sock = config.bind_socket()  # exits with uvicorn's message when the address is taken
    sock.listen(config.backlog)
    ready()
    server = uvicorn.Server(config=config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    if config.workers <= 1 and not server.started:
        raise SystemExit(STARTUP_FAILURE)
