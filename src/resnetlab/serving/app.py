"""The ASGI app: ``GET /`` (the page), ``GET /info`` (the model), ``POST /predict`` (multipart field
``image`` -> ``{"predictions": [{"class", "index", "probability"}, ...]}``, predict's own numbers).

Every bad upload (no multipart form, no ``image`` field, a field that is no file, not an image, a
decompression bomb, a body over ``MAX_UPLOAD_BYTES``) is a 4xx with ``{"error": one line}``: the
request fails, the server goes on. A body is counted as it arrives, never held beyond the limit.
"""

from __future__ import annotations

import base64
import io
import threading
from importlib.resources import files
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from resnetlab.data.decode import UnreadableImage, open_image, reading
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.predict import Predictor

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # one photo; phones write 2-12 MB
FIELD = "image"


class UploadError(Exception):
    """A request the server refuses: its HTTP status and one line for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(predictor: Predictor, *, explain: bool | None = None) -> Starlette:
    """The app serving ``predictor``; ``explain`` (None: when grad-cam is installed) adds the class
    activation map to ``POST /predict?explain=1`` and the page."""
    from resnetlab.evaluation.explain import grad_cam_installed

    explain = grad_cam_installed() if explain is None else explain
    one_at_a_time = threading.Lock()  # one model, one forward pass at a time
    page = files("resnetlab.serving").joinpath("page.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def info(request: Request) -> Response:
        return JSONResponse({"model": predictor.checkpoint["model"]["name"], "classes": predictor.classes, "explain": explain,
                             "max_upload_bytes": MAX_UPLOAD_BYTES})

    async def predict(request: Request) -> Response:
        try:
            topk = _topk(request, predictor.default_topk)
            image = _decode(await _image_field(request))
            with_map = explain and request.query_params.get("explain") in ("1", "true")
        except UploadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)

        def answer() -> dict[str, Any]:
            with one_at_a_time:
                body: dict[str, Any] = {"predictions": predictor.predict_image(image, topk=topk)}  # the EXIF rule applied
                if with_map:
                    body["activation_map"] = _map_png(predictor, image, body["predictions"][0]["index"])
                return body

        try:
            return JSONResponse(await run_in_threadpool(answer))
        except ResnetlabError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)

    return Starlette(routes=[Route("/", index), Route("/info", info), Route("/predict", predict, methods=["POST"])])


async def _image_field(request: Request) -> bytes:
    """The bytes of the multipart field ``image``, the body counted as it arrives."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UploadError(415, f"send the photo as a multipart/form-data upload in the field {FIELD!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        await _drain(request)
        raise UploadError(413, f"the upload is {int(declared):,} bytes, over the {MAX_UPLOAD_BYTES:,}-byte limit: send a smaller photo")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD_BYTES:
            await _drain(request)
            raise UploadError(413, f"the upload is over the {MAX_UPLOAD_BYTES:,}-byte limit: send a smaller photo")

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except Exception as exc:  # python-multipart's and starlette's errors for a malformed body
        raise UploadError(400, f"the upload is not a well-formed multipart form ({str(exc)[:100]})") from None
    field = form.get(FIELD)
    if field is None:
        raise UploadError(400, f"the form has no field {FIELD!r} (it has: {', '.join(form.keys()) or 'none'}): "
                               f"send the photo as the field {FIELD!r}")
    if isinstance(field, str):
        raise UploadError(400, f"the field {FIELD!r} holds text, not a file: upload the photo as a file")
    return await field.read()


async def _drain(request: Request) -> None:
    """Read what is left of a refused body, keeping none of it, so the client reads the answer."""
    try:
        async for _ in request.stream():
            pass
    except Exception:  # the client went away: nothing left to answer
        pass


def _decode(data: bytes) -> Image.Image:
    """The upload as a decoded PIL image; decompression bombs refused before their pixels exist."""
    if not data:
        raise UploadError(400, f"the field {FIELD!r} is empty: choose a photo")
    try:
        with reading("the upload"):
            image = open_image(io.BytesIO(data))
            image.load()
            return image
    except UnreadableImage as exc:
        reason = (str(exc.error).splitlines() or [type(exc.error).__name__])[0][:200]
        raise UploadError(400, f"the upload is not an image Pillow can read: {reason}") from None


def _topk(request: Request, default: int) -> int:
    """``?topk=N``, else predict's default (every class up to ten, else 5)."""
    raw = request.query_params.get("topk")
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise UploadError(400, f"topk must be a whole number >= 1, got {raw[:20]!r}")
    return int(raw)


def _map_png(predictor: Predictor, image: Image.Image, index: int) -> str:
    """The activation map of class ``index`` over the image the model saw, as a PNG data URL."""
    from resnetlab.data.orientation import oriented
    from resnetlab.evaluation.explain import explain_image, overlay

    explanation = explain_image(predictor, oriented(image, predictor.exif_orientation), index)
    buffer = io.BytesIO()
    Image.fromarray(overlay(explanation.picture, explanation.heat)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
