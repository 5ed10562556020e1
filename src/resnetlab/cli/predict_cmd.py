"""``resnetlab predict``: every class's probability for images, with the model's own preprocessing.

Either a run folder or checkpoint (``resnetlab predict RUN photo.jpg``) or a plain state dict
and its class file, as the transfer-learning write-ups save them (``resnetlab predict --model
resnet34 --weights resNet34.pth --classes class_indices.json tulip.jpg``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from resnetlab.cli.eval_cmd import add_run_flags, add_test_view_flags, positive_int, view_overrides
from resnetlab.data.orientation import EXIF_ORIENTATIONS
from resnetlab.errors import ResnetlabError

ALL_CLASSES_UP_TO = 10  # Predictor.default_topk's (evaluation.predict, loaded only when a command runs)

# --cam-method's choices: evaluation.explain.CAM_METHODS's names (loaded only when a command runs; a test keeps them equal)
CAM_METHODS = ("gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "eigencam", "eigengradcam", "scorecam",
               "ablationcam", "gradcamelementwise")


def register(sub: argparse._SubParsersAction) -> None:
    from resnetlab.precision import PRECISIONS  # torch is imported only when a command runs

    p = sub.add_parser("predict", help="classify images or folders of images with a run, a checkpoint or a weights file",
                       description="Prints each image's classes, most probable first: every class when there are at most "
                                   f"{ALL_CLASSES_UP_TO}, else the top 5 (--topk N to choose).")
    p.add_argument("inputs", nargs="+", metavar="[CHECKPOINT] PATH",
                   help="a run folder or .pt checkpoint, then image files or folders (with --weights: only images)")
    p.add_argument("--model", default=None, help="with --weights: the architecture of the weights (e.g. resnet34)")
    p.add_argument("--weights", default=None, metavar="FILE", help="a plain state_dict() file (.pth), with --model and --classes")
    p.add_argument("--classes", default=None, metavar="JSON", help='with --weights: class_indices.json ({"0": "daisy", ...})')
    p.add_argument("--image-size", type=int, default=None, metavar="S",
                   help="with --weights: the crop side the model was trained at (photos resized to S*256/224, centre S crop; "
                        "default: a run's preprocess.json beside the weights, else 224)")
    p.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                   help="with --weights: the per-channel mean the model was trained with, in [0, 1] units "
                        "(default: a run's preprocess.json beside the weights, else ImageNet's)")
    p.add_argument("--std", type=float, nargs="+", default=None, metavar="S",
                   help="with --weights: the per-channel std the model was trained with (default as --mean)")
    p.add_argument("--exif-orientation", choices=EXIF_ORIENTATIONS, default=None,
                   help="photos tagged as stored sideways: read as stored (ignore) or turned upright (apply); "
                        "default: the run's rule (with --weights: ignore, as torchvision)")
    p.add_argument("--topk", type=positive_int, default=None, help=f"classes per image (default: all up to {ALL_CLASSES_UP_TO}, else 5)")
    add_test_view_flags(p)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="autocast precision of the forward passes (default fp32 in both forms, so that the same weights give "
                        "the same probabilities on every machine; bf16 or auto for speed)")
    add_run_flags(p, batch_default=64)
    p.add_argument("--show", default=None, metavar="OUT.png", help="save the image(s) titled with the predicted class and probability "
                                                                  "(.png, .jpg, .pdf, .svg...; never over one of the images)")
    p.add_argument("--explain", default=None, metavar="OUT.png",
                   help="save each image with the class activation map of its predicted class overlaid, beside its top "
                        "classes (needs: pip install 'resnetlab[explain]')")
    p.add_argument("--explain-class", default=None, metavar="NAME", help="with --explain: map this class instead of the predicted one")
    p.add_argument("--cam-method", choices=CAM_METHODS, default="gradcam",
                   help="with --explain: the grad-cam package's method (default gradcam)")
    p.add_argument("--overwrite", action="store_true", help="with --show or --explain: replace an existing file")
    p.add_argument("--json", action="store_true", help='print [{"path", "predictions": [{"class", "index", "probability"}]}]')
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from resnetlab.evaluation import Predictor
    from resnetlab.evaluation.plots import check_figure_path
    from resnetlab.evaluation.preprocess import find_images
    from resnetlab.models.complexity import check_min_image_size

    options = dict(device=args.device, batch_size=args.batch_size, precision=args.precision,
                   exif_orientation=args.exif_orientation, **view_overrides(args))
    if args.weights:
        if not args.model or not args.classes:
            raise ResnetlabError("--weights needs --model NAME (its architecture) and --classes class_indices.json")
        if args.image_size is not None:
            check_min_image_size(args.model, args.image_size, f"--image-size {args.image_size}")
        paths = args.inputs
    else:
        if args.model or args.classes or args.mean or args.std:
            raise ResnetlabError("--model, --classes, --mean and --std go with --weights FILE; a run folder or checkpoint names its own")
        if len(args.inputs) < 2:
            raise ResnetlabError("pass a run folder (or checkpoint) and then the images: resnetlab predict RUN photo.jpg")
        paths = args.inputs[1:]
    if args.show:  # before any work: a typo in --show must not cost the predictions, nor a photo
        check_figure_path(args.show, overwrite=args.overwrite, inputs=find_images(paths))
    if (args.explain_class or args.cam_method != "gradcam") and not args.explain:
        raise ResnetlabError("--explain-class and --cam-method go with --explain OUT.png")
    if args.explain and args.show and Path(args.explain).resolve() == Path(args.show).resolve():
        raise ResnetlabError("--explain and --show name the same file: give each figure its own")
    if args.weights:
        predictor = Predictor.from_weights(args.model, args.weights, args.classes, image_size=args.image_size, mean=args.mean,
                                           std=args.std, **options)
    else:
        predictor = Predictor(args.inputs[0], **options)
    topk = args.topk if args.topk is not None else predictor.default_topk  # Predictor's default, the Python API's too
    results = predictor.predict(paths, topk=topk, explain=args.explain, explain_class=args.explain_class,
                                cam_method=args.cam_method, overwrite=args.overwrite)
    if args.explain:
        print(f"wrote {args.explain}")
    if args.show:
        from resnetlab.evaluation.plots import plot_predictions

        print(f"wrote {plot_predictions(results, args.show, overwrite=args.overwrite, exif_orientation=predictor.exif_orientation)}")
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for item in results:
        if len(results) == 1 and topk > 1:
            print(item["path"])
            width = max(len(p["class"]) for p in item["predictions"])
            for p in item["predictions"]:
                print(f"  {p['class']:<{width}}  {p['probability']:.4f}")
            continue
        best = "  ".join(f"{p['class']} {p['probability']:.3f}" for p in item["predictions"])
        print(f"{item['path']}: {best}")
    return 0
