"""``resnetlab serve``: a local web page (drop a photo, see its classes) and ``POST /predict``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from resnetlab.cli.eval_cmd import add_test_view_flags
    from resnetlab.precision import PRECISIONS

    p = sub.add_parser("serve", help="a local web page to classify photos with a model, and a JSON endpoint (POST /predict)",
                       description="Serves one page (drop or pick a photo: its top classes, and the class activation map "
                                   "when the explain extra is installed) and POST /predict (multipart field 'image') "
                                   "answering with predict's numbers. Needs: pip install 'resnetlab[serve]'.")
    p.add_argument("source", metavar="RUN_OR_FOLDER", help="a run folder, checkpoint, model folder or .safetensors file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--device", default="auto", help="device of the model (auto, cpu, cuda, cuda:N, mps)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="autocast precision, as predict's (default fp32)")
    add_test_view_flags(p)
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from resnetlab.cli.eval_cmd import view_overrides
    from resnetlab.serving.server import serve

    serve(args.source, host=args.host, port=args.port, device=args.device, precision=args.precision, **view_overrides(args))
    return 0
