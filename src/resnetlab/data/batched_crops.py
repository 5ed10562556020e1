"""Photos' training crops cut and resized a whole batch at a time, on whichever device holds the pixels.

Why: ``photo_crops.cut_crop`` resizes one box per call, which keeps a GPU waiting on the CPU.
Boxes differ in size, so no single ``interpolate`` fits a batch; but an antialiased bilinear resize
is separable, out = Wy @ box @ Wx^T, with Wy (S, h) and Wx (S, w) holding torch's own kernel
weights (``_compute_indices_weights_aa``: a triangle stretched over the scale when shrinking).
Packing the boxes into one zero-padded batch and giving each its weight matrices makes the whole
batch two batched matrix products, and the pixels those of ``cut_crop`` up to rounding (torch's
uint8 CPU kernel rounds its weights to fixed point; here they stay float32, TF32 where a run
allows it on a GPU). A mirrored crop mirrors its Wx, as ``cut_crop`` mirrors the box.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from resnetlab.data.photo_crops import PhotoCrop


def resize_weights(sizes: torch.Tensor, out: int, length: int, flips: torch.Tensor | None = None) -> torch.Tensor:
    """(B, out, length) float32: row i of item b holds the weights torch's antialiased bilinear
    resize of a ``sizes[b]``-long line to ``out`` gives input j (zero for j >= sizes[b]); with
    ``flips[b]`` the line is read backwards, as if mirrored first."""
    size = sizes.to(torch.float32)[:, None, None]  # (B, 1, 1); float32, as torch's kernel computes for float pixels
    scale = size / out
    support = scale.clamp(min=1.0)  # bilinear's support of 1, stretched when shrinking
    inverse = 1.0 / support
    centre = scale * (torch.arange(out, dtype=torch.float32, device=sizes.device)[None, :, None] + 0.5)  # (B, out, 1)
    first = (centre - support + 0.5).trunc().clamp(min=0)  # torch's window: [first, last) of the input
    last = (centre + support + 0.5).trunc().minimum(size)
    j = torch.arange(length, dtype=torch.float32, device=sizes.device)[None, None, :]  # (1, 1, length)
    if flips is not None:
        j = torch.where(flips.to(sizes.device)[:, None, None], size - 1 - j, j)  # input position of column j once mirrored
    weights = (1 - ((j - centre + 0.5) * inverse).abs()).clamp(min=0) * ((j >= first) & (j < last))
    return weights / weights.sum(-1, keepdim=True)


def resize_packed(boxes: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor, flips: torch.Tensor, crop: int) -> torch.Tensor:
    """uint8 (B, C, S, S), channels-last, from uint8 boxes packed as (B, H, W, C): item b's box in
    its top-left ``heights[b]`` x ``widths[b]`` corner (the rest is ignored), resized to S x S and
    mirrored where ``flips`` says."""
    b, h, w, c = boxes.shape
    device = boxes.device  # the weights are computed where they are used: (B, S, W) floats are no small copy
    wy = resize_weights(heights.to(device), crop, h)  # (B, S, H)
    wx = resize_weights(widths.to(device), crop, w, flips.to(device))  # (B, S, W)
    x = boxes.float().view(b, h, w * c)
    rows = torch.bmm(wy, x).view(b, crop, w, c)  # (B, S, W, C): every column resized down the rows
    cols = torch.bmm(wx, rows.transpose(1, 2).reshape(b, w, crop * c)).view(b, crop, crop, c)  # (B, S(x), S(y), C)
    pixels = cols.round_().clamp_(0, 255).to(torch.uint8)
    return pixels.permute(0, 3, 2, 1).contiguous(memory_format=torch.channels_last)  # (B, C, S(y), S(x))


def pack_boxes(images: Sequence[torch.Tensor], crops: Sequence[PhotoCrop], device: torch.device | str) -> torch.Tensor:
    """uint8 (B, H, W, C) on ``device``: each crop's box of its (C, H, W) image (channels-last
    strides, as the cache holds them) in the top-left corner of a zeroed batch as tall and wide as
    the largest box. Built where the images are (in pinned memory when bound for CUDA), then moved."""
    height, width = max(v.height for v in crops), max(v.width for v in crops)
    device, source = torch.device(device), images[0].device
    pinned = device.type == "cuda" and source.type == "cpu"  # a page-locked batch crosses to the GPU without waiting
    packed = torch.zeros(len(crops), height, width, images[0].shape[0], dtype=torch.uint8, device=source, pin_memory=pinned)
    for k, (image, v) in enumerate(zip(images, crops)):
        packed[k, : v.height, : v.width] = image[:, v.top : v.top + v.height, v.left : v.left + v.width].permute(1, 2, 0)
    return packed if source == device else packed.to(device, non_blocking=True)


def cut_crops(images: Sequence[torch.Tensor], crops: Sequence[PhotoCrop], crop: int, device: torch.device | str) -> torch.Tensor:
    """uint8 (B, C, S, S) channels-last on ``device``: ``photo_crops.cut_crop`` of every (image,
    crop) pair, in one batched resize there."""
    packed = pack_boxes(images, crops, device)
    heights = torch.tensor([v.height for v in crops])
    widths = torch.tensor([v.width for v in crops])
    flips = torch.tensor([v.flip for v in crops])
    return resize_packed(packed, heights, widths, flips, crop)
