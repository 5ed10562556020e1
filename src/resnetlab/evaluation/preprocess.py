"""Turning image files into the tensors a checkpoint's model expects.

Everything comes from the checkpoint: the input size, how its training data became model input
(a photo model: shorter side resized on the PIL image, then a centre crop, as torchvision's
references evaluate; a small-image model: the whole image resized), the channel count
(grayscale, palette, 16-bit and RGBA images are converted) and the normalisation of its
training set. Decoding errors become a ``ResnetlabError`` naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from resnetlab.data import decode
from resnetlab.data.decode import UnreadableImage, resize_photo, rgb_image
from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION, check_exif_orientation
from resnetlab.data.photo_pipeline import PhotoPipeline
from resnetlab.data.scan import listed, scan_classes
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.view_averaging import ONE_VIEW, TestViews, check_views_fit
from resnetlab.files import path_problem

log = logging.getLogger(__name__)


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand each path: a file is taken as given, a folder contributes its images (recursively,
    sorted, walked as a class folder of training data is: ``data/scan.py``; what it passes over is
    named in the log)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            scan = scan_classes([path])
            if scan.passed:
                log.warning("passed over %d entr%s in %s: %s", len(scan.passed), "y" if len(scan.passed) == 1 else "ies", path,
                            listed(scan.passed))
            if not scan.samples:
                raise ResnetlabError(f"folder {path} holds no images ({', '.join(IMG_EXTENSIONS)}): pass a folder with images")
            found.extend(Path(p) for p, _ in scan.samples)
        elif (problem := path_problem(path)) is not None:
            raise ResnetlabError(f"{path} {problem}: pass an image file or a folder of images")
        else:
            found.append(path)
    if not found:
        raise ResnetlabError("no images given: pass at least one image file or folder")
    return found


def open_rgb(path: str | Path, exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> Image.Image:
    """Decode any image Pillow reads into an 8-bit RGB PIL image, as training's cache does
    (``data.decode.open_rgb``): what a photo's transform starts from."""
    try:
        return decode.open_rgb(path, exif_orientation)
    except UnreadableImage as exc:
        reason = str(exc.error).splitlines()[0] if str(exc.error) else type(exc.error).__name__
        raise ResnetlabError(f"{path} is not an image Pillow can read: {reason}") from None


def rgb_pixels(image: Image.Image) -> torch.Tensor:
    """A decoded PIL image as uint8 RGB (3, H, W): palette, grayscale, 16-bit and RGBA (alpha
    dropped) are converted, so every source reaches ``build_transform`` in one form."""
    return v2.functional.pil_to_tensor(rgb_image(image))


def build_transform(input_size: Sequence[int], mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """uint8 RGB (3, h, w) of any size -> float (C, H, W) normalised as the checkpoint's training data.

    For checkpoints of small images (CIFAR-like), which saw whole images: the short side resized to
    the input's short side, then the centre cropped."""
    channels, height, width = input_size
    steps: list[v2.Transform] = []
    if channels == 1:
        steps.append(v2.Grayscale(num_output_channels=1))
    elif channels != 3:
        raise ResnetlabError(f"checkpoint expects {channels}-channel images: only 1 (grayscale) and 3 (RGB) can be read from files")
    steps += [
        v2.Resize(min(height, width), antialias=True),
        v2.CenterCrop((height, width)),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ]
    return v2.Compose(steps)


class PhotoTransform:
    """A photo (PIL RGB) -> float (3, S, S), exactly torchvision's evaluation transform:
    ``Resize(resize)`` on the PIL image, ``CenterCrop(S)``, ``ToTensor()``, ``Normalize(mean, std)``;
    with ``ten_crop``, (10, 3, S, S): the corners and centre, then their mirror images. The crops
    are the evaluation loaders' (``data.photo_pipeline.PhotoPipeline``)."""

    def __init__(self, crop: int, resize: int, mean: Sequence[float], std: Sequence[float], ten_crop: bool = False) -> None:
        self.crop, self.resize, self.ten_crop = crop, resize, ten_crop
        self.pipeline = PhotoPipeline(crop, ten_crop=ten_crop)
        self.normalize = v2.Normalize(list(mean), list(std))

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        if isinstance(image, torch.Tensor):
            image = v2.functional.to_pil_image(image)
        resized = v2.functional.pil_to_tensor(resize_photo(image, self.resize))  # uint8 (3, h, w), as the cache holds it
        pixels, _ = self.pipeline.batch([0], [resized], epoch=0)  # a batch of one: (1, 3, S, S) or (1, 10, 3, S, S)
        return self.normalize(pixels[0].float().div_(255))  # ToTensor, then Normalize (over the last three dimensions)


Transform = Callable[[Image.Image | torch.Tensor], torch.Tensor]


def load_batch(paths: Sequence[Path], transform: Transform, exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> torch.Tensor:
    """Read and preprocess ``paths`` into one float batch (N, C, H, W), or (N, 10, C, H, W) for ten crops."""
    return torch.stack([transform(open_rgb(p, exif_orientation)) for p in paths])


def checkpoint_exif_orientation(ckpt: dict) -> str:
    """How the checkpoint's training read photos stored sideways (``data/orientation.py``): its
    ``preprocess`` record, else its config, else "ignore" (every run before the rule was recorded)."""
    preprocess, config = ckpt.get("preprocess") or {}, ckpt.get("config") or {}
    return check_exif_orientation(preprocess.get("exif_orientation") or config.get("exif_orientation") or DEFAULT_EXIF_ORIENTATION)


def checkpoint_transform(ckpt: dict, views: TestViews = ONE_VIEW) -> Transform:
    """The evaluation transform a checkpoint implies (its ``input_size``, ``normalization`` and
    ``preprocess``): a photo model's resize and centre crop (or ten crops, with ``views.ten_crop``),
    or a small-image model's whole image (its other views are taken from the tensor later)."""
    try:
        input_size = ckpt["input_size"]
        mean, std = ckpt["normalization"]["mean"], ckpt["normalization"]["std"]
    except (KeyError, TypeError):
        raise ResnetlabError("checkpoint has no input_size/normalization entries: it was not written by resnetlab train") from None
    preprocess = ckpt.get("preprocess") or {}
    if preprocess.get("pipeline") == "photos":
        return PhotoTransform(int(input_size[1]), int(preprocess["resize"]), mean, std, ten_crop=views.ten_crop)
    check_views_fit(views, ckpt)
    small = build_transform(input_size, mean, std)
    return lambda image: small(rgb_pixels(image) if isinstance(image, Image.Image) else image)
