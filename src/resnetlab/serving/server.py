"""Run the app with uvicorn: ``serve(source, host, port)`` until Ctrl-C.

The server binds to the loopback address unless told otherwise: a demo page is for this
machine; another address is served only when asked, with a warning that the network can reach it.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import socket
from pathlib import Path
from typing import Any

from resnetlab.errors import ResnetlabError

INSTALL = "pip install 'resnetlab[serve]'"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
log = logging.getLogger(__name__)


def require_serving() -> None:
    missing = [name for name in ("starlette", "uvicorn", "multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise ResnetlabError(f"resnetlab serve needs {', '.join(missing)}: {INSTALL}")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def build_server(source: str | Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **predictor_options: Any) -> Any:
    """A ``uvicorn.Server`` for the model in ``source`` (a run folder, checkpoint, model folder or
    .safetensors file), not yet started: ``serve`` runs it, tests run it on a thread."""
    require_serving()
    if not 0 <= port <= 65535:
        raise ResnetlabError(f"--port {port} is not a port number (0-65535)")
    import uvicorn

    from resnetlab.evaluation.predict import Predictor
    from resnetlab.serving.app import create_app

    app = create_app(Predictor(source, **predictor_options))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(source: str | Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **predictor_options: Any) -> None:
    """Serve ``source``'s model on http://host:port/ until interrupted."""
    if not is_loopback(host):
        log.warning("serving on %s: other machines on the network can reach this page", host)
    require_serving()
    _check_port_free(host, port)
    server = build_server(source, host=host, port=port, **predictor_options)
    print(f"serving {source} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    server.run()


def _check_port_free(host: str, port: int) -> None:
    """One line when the address is taken (uvicorn would log a traceback-like error and exit 1)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ResnetlabError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; choose another --port or --host") from None
