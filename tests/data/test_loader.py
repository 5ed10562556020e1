"""The tensor loader's augmentation and determinism, and which loader a split gets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from resnetlab.data import Augmentation, ImageSet, StreamingLoader, TensorLoader, create_loader

IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # normalisation that leaves pixel values as they are


def random_set(n: int = 64, size: int = 8, seed: int = 0) -> ImageSet:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(1, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)  # no zeros: padding is visible
    return ImageSet(images, torch.arange(n) % 10)


def loader(data: ImageSet, **kwargs) -> TensorLoader:
    options = dict(IDENTITY, train=True, seed=0) | kwargs
    return TensorLoader(data, kwargs.pop("batch_size", 16), **{k: v for k, v in options.items() if k != "batch_size"})


def all_batches(tl, epoch: int = 0, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*tl.batches(epoch, start))
    return torch.cat(xs), torch.cat(ys)


def test_every_crop_lies_inside_the_padded_image_and_flips_about_half() -> None:
    data = random_set(n=400, size=6)
    x, y = all_batches(loader(data, batch_size=50))
    padded = F.pad(data.images, (4, 4, 4, 4)).float()
    flipped = 0
    order = torch.randperm(400, generator=torch.Generator().manual_seed(0))
    for image, row in zip(x, order[: len(x)]):
        source = padded[row]  # the loader's epoch-0 order is randperm seeded by (seed 0, epoch 0)
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                   if torch.equal(source[:, dy:dy + 6, dx:dx + 6].flip(2) if f else source[:, dy:dy + 6, dx:dx + 6], image)]
        assert matches, "an output is not a (mirrored) crop of its padded source image"
        flipped += matches[0][2]
    assert 0.4 < flipped / len(x) < 0.6
    assert x.min() == 0  # some crops reach into the zero padding
    assert torch.equal(y, data.labels[order[: len(y)]])


def test_same_seed_same_batches_other_epoch_or_seed_differs() -> None:
    data = random_set()
    a, b = all_batches(loader(data)), all_batches(loader(data))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(all_batches(loader(data), epoch=1)[0], a[0])
    assert not torch.equal(all_batches(loader(data, seed=1))[0], a[0])


def test_resume_at_batch_is_exact() -> None:
    tl = loader(random_set())
    full = list(tl.batches(3))
    resumed = list(tl.batches(3, start=2))
    assert len(resumed) == len(full) - 2
    assert all(torch.equal(f[0], r[0]) and torch.equal(f[1], r[1]) for f, r in zip(full[2:], resumed))


def test_rank_shards_union_is_the_single_process_batch() -> None:
    data = random_set()
    single = list(loader(data, batch_size=16).batches(1))
    shards = [list(loader(data, batch_size=16, rank=r, world_size=2).batches(1)) for r in range(2)]
    for b, (x, y) in enumerate(single):
        assert torch.equal(shards[0][b][0], x[0::2]) and torch.equal(shards[1][b][0], x[1::2])
        assert sorted(shards[0][b][1].tolist() + shards[1][b][1].tolist()) == sorted(y.tolist())


def test_eval_loader_keeps_order_and_pixels_and_normalises() -> None:
    data = random_set(n=10)
    tl = TensorLoader(data, 4, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5), train=False)
    assert len(tl) == 3  # the last, partial batch is kept for evaluation
    x, y = all_batches(tl)
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    expected = (data.images.float() / 255 - mean) / std
    assert torch.allclose(x, expected, atol=1e-5) and torch.equal(y, data.labels)


def test_train_loader_drops_the_partial_batch_and_channels_last() -> None:
    tl = loader(random_set(n=40), batch_size=16, channels_last=True)
    assert len(tl) == 2
    x, _ = next(tl.batches(0))
    assert x.shape == (16, 3, 8, 8) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    y, _ = next(loader(random_set(n=40), batch_size=16).batches(0))
    assert y.is_contiguous() and torch.equal(x, y)


def test_alternate_flip_mirrors_each_image_every_other_epoch() -> None:
    data = random_set(n=32)
    aug = Augmentation(crop_padding=0, flip="alternate")
    tl = loader(data, augmentation=aug, batch_size=32)
    order0 = torch.randperm(32, generator=torch.Generator().manual_seed(0))
    order1 = torch.randperm(32, generator=torch.Generator().manual_seed(1))
    x0, x1 = all_batches(tl, 0)[0], all_batches(tl, 1)[0]
    by_row0, by_row1 = torch.empty_like(x0), torch.empty_like(x1)
    by_row0[order0], by_row1[order1] = x0, x1
    assert torch.equal(by_row0, by_row1.flip(3))
    assert 0 < sum(torch.equal(by_row0[i], data.images[i].float()) for i in range(32)) < 32


def test_epochs_from_crop_epochs_on_see_whole_images() -> None:
    data = random_set(n=32)
    late = loader(data, augmentation=Augmentation(crop_padding=2, flip="none", crop_epochs=1), batch_size=8)
    cropped = loader(data, augmentation=Augmentation(crop_padding=2, flip="none"), batch_size=8)
    whole = loader(data, augmentation=Augmentation(crop_padding=0, flip="none"), batch_size=8)
    assert torch.equal(all_batches(late, 0)[0], all_batches(cropped, 0)[0])  # before crop_epochs: cropped as ever
    assert not torch.equal(all_batches(late, 0)[0], all_batches(whole, 0)[0])
    assert torch.equal(all_batches(late, 1)[0], all_batches(whole, 1)[0])  # from it on: the images themselves
    mirrored = loader(data, augmentation=Augmentation(crop_padding=2, flip="random", crop_epochs=0), batch_size=32)
    x, _ = all_batches(mirrored, 0)
    originals = data.images[torch.randperm(32, generator=torch.Generator().manual_seed(0))].float()
    flips = [torch.equal(a, b.flip(2)) for a, b in zip(x, originals)]
    assert all(f or torch.equal(a, b) for f, a, b in zip(flips, x, originals)) and 0 < sum(flips) < 32  # flips stay


def test_batch_copies_add_independent_crops_and_the_other_side_to_the_plain_batch() -> None:
    """Copy 0 is the plain loader's batch (same draws); copy 1 has its own crops and, with
    alternating flips, shows each image mirrored the other way."""
    data = random_set(n=32)
    plain = loader(data, augmentation=Augmentation(crop_padding=2, flip="alternate"), batch_size=8)
    doubled = loader(data, augmentation=Augmentation(crop_padding=2, flip="alternate", copies=2), batch_size=8)
    for (x1, y1), (x2, y2) in zip(plain.batches(1), doubled.batches(1)):
        assert x2.shape[0] == 16 and torch.equal(x2[:8], x1) and torch.equal(y2, y1.repeat(2))
    whole = loader(data, augmentation=Augmentation(crop_padding=2, flip="alternate", copies=2, crop_epochs=0), batch_size=8)
    x, _ = next(whole.batches(0))
    assert torch.equal(x[8:], x[:8].flip(3))  # no crops: the second copy is the first one mirrored
    x_cropped, _ = all_batches(doubled, 0)
    firsts = torch.cat([b[:8] for b, _ in doubled.batches(0)])
    seconds = torch.cat([b[8:] for b, _ in doubled.batches(0)])
    assert x_cropped.shape[0] == 64 and not torch.equal(seconds, firsts.flip(3))  # crops drawn anew


def test_cutout_zeroes_one_square_per_image() -> None:
    data = random_set(n=16, size=16)
    tl = loader(data, augmentation=Augmentation(crop_padding=0, flip="none", cutout=4), batch_size=16)
    x, _ = all_batches(tl)
    zeros = (x == 0).all(1).sum((1, 2))  # zeroed pixels per image
    assert ((zeros >= 9) & (zeros <= 25)).all()  # a 5x5 square (half=2 each side), cut by the border at most to 3x3


def test_create_loader_picks_the_loader_of_the_split(tmp_path) -> None:
    """Small images: TensorLoader; photos in memory: PhotoLoader; photos on disk: StreamingLoader."""
    from resnetlab.data.photo_loader import PhotoLoader
    from resnetlab.data.photos import PhotoSet
    from resnetlab.data.streaming import PhotoFiles

    assert isinstance(create_loader(random_set(), 8, **IDENTITY), TensorLoader)
    photos = PhotoSet.from_images([torch.zeros(3, 40, 50, dtype=torch.uint8)] * 3, torch.zeros(3, dtype=torch.long), crop=32)
    assert isinstance(create_loader(photos, 2, **IDENTITY), PhotoLoader)
    files = PhotoFiles(["a.jpg", "b.jpg", "c.jpg"], torch.zeros(3, dtype=torch.long), crop=32)
    streaming = create_loader(files, 2, **IDENTITY, num_workers=0)
    assert isinstance(streaming, StreamingLoader) and len(streaming) == 2


def test_padding_value_is_what_the_padded_crops_show_at_their_borders() -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    data = ImageSet(torch.full((64, 3, 8, 8), 200, dtype=torch.uint8), torch.zeros(64, dtype=torch.long))
    tl = TensorLoader(data, 64, mean=mean, std=std, train=True, seed=0)
    x, _ = next(tl.batches(0))
    values = x.permute(1, 0, 2, 3).reshape(3, -1)  # every pixel of the batch, per channel
    border = tl.padding_value.view(3, 1)
    expected = -torch.tensor(mean).view(3, 1) / torch.tensor(std).view(3, 1)
    assert torch.allclose(border, expected)
    assert ((values - border).abs() < 1e-5).any(dim=1).all()  # padding shows up in the crops with exactly this value


def test_data_modules_import_one_another_without_a_circle() -> None:
    """Every import between data modules, type-checking ones included, runs one way (a circle makes
    the import order matter and hides which module owns what)."""
    import ast
    from pathlib import Path

    import resnetlab.data

    folder = Path(resnetlab.data.__file__).parent
    edges = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        edges[path.stem] = {n.rsplit(".", 1)[1] for n in names if n.startswith("resnetlab.data.")} - {path.stem}
    edges.pop("__init__")
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(edges.get(module, ())):
            assert state.get(other) != 1, f"import circle: {' -> '.join(path + [module, other])}"
            if other not in state:
                visit(other, path + [module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_the_last_partial_training_batch_is_dropped_by_default_and_kept_where_batchnorm_can_train_on_it() -> None:
    data = random_set(48)

    def sizes(**options) -> list[int]:
        return [len(y) for _, y in loader(data, batch_size=10, **options).batches(0)]

    assert sizes() == [10] * 4  # 8 images left out, other ones each epoch
    assert sizes(drop_last=False) == [10] * 4 + [8]
    every = torch.cat([y for _, y in loader(data, batch_size=10, drop_last=False).batches(1)])
    assert sorted(every.tolist()) == sorted(data.labels.tolist())  # every image once
    # The last 8 over 4 processes: 2 each, kept. Over 5: 2, 2, 2, 1, 1, and BatchNorm cannot train on one.
    assert [sizes(drop_last=False, rank=r, world_size=4) for r in range(4)] == [[3, 3, 3, 3, 2]] * 2 + [[2, 2, 2, 2, 2]] * 2
    assert [len(sizes(drop_last=False, rank=r, world_size=5)) for r in range(5)] == [4] * 5
    assert len(loader(data, batch_size=10, train=False)) == 5  # evaluation keeps every image


def test_progressive_resizing_by_crops_takes_smaller_squares_of_the_padded_image_then_whole_ones() -> None:
    """In "crop" mode stage epochs take crops of the stage's side from anywhere in the padded image
    (mirrored as ever); after the last stage the crops are the images' own size, drawn as without stages."""
    data = random_set(n=96, size=8)
    staged = loader(data, augmentation=Augmentation(crop_padding=2, flip="random", size_stages=((4, 1), (6, 2)), stage_mode="crop"),
                    batch_size=32)
    assert [staged.crop_shape(e) for e in range(4)] == [(4, 4), (6, 6), (8, 8), (8, 8)]
    padded = F.pad(data.images, (2, 2, 2, 2)).float()
    order = torch.randperm(96, generator=torch.Generator().manual_seed(0))
    x, _ = all_batches(staged, 0)
    corners = set()
    for image, row in zip(x, order):
        matches = [(dy, dx) for dy in range(9) for dx in range(9) for f in (False, True)
                   if torch.equal(padded[row, :, dy:dy + 4, dx:dx + 4].flip(2) if f else padded[row, :, dy:dy + 4, dx:dx + 4], image)]
        assert matches, "a stage crop is not a (mirrored) 4x4 square of its padded source image"
        corners.update(matches)
    assert len(corners) > 30 and {dy for dy, _ in corners} == set(range(9))  # every row of the 9 positions is drawn
    assert all_batches(staged, 1)[0].shape[2:] == (6, 6)
    plain = loader(data, augmentation=Augmentation(crop_padding=2, flip="random"), batch_size=32)
    assert torch.equal(all_batches(staged, 2)[0], all_batches(plain, 2)[0])  # after the stages: the plain loader's batches
    resumed = list(staged.batches(0, start=1))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(list(staged.batches(0))[1:], resumed))


def test_progressive_resizing_by_crops_without_padding_still_crops_at_random() -> None:
    data = random_set(n=64, size=8)
    staged = loader(data, augmentation=Augmentation(crop_padding=0, flip="none", size_stages=((5, 1),), stage_mode="crop"),
                    batch_size=64)
    x, _ = all_batches(staged, 0)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    corners = {next((dy, dx) for dy in range(4) for dx in range(4) if torch.equal(data.images[row, :, dy:dy + 5, dx:dx + 5].float(), image))
               for image, row in zip(x, order)}
    assert len(corners) > 8  # of the 16 positions inside the image: not always the top-left one
    late = loader(data, augmentation=Augmentation(crop_padding=0, flip="none", size_stages=((5, 1),), stage_mode="crop", crop_epochs=0),
                  batch_size=64)
    centred = all_batches(late, 0)[0]
    assert torch.equal(centred, data.images[order, :, 1:6, 1:6].float())  # an uncropped epoch takes the centred square


def test_progressive_resizing_by_default_crops_the_whole_image_resized_and_padded_in_proportion() -> None:
    """A stage of side 16 on 32-pixel images: each image resized as torchvision resizes it
    (antialiased bilinear, rounded to uint8), padded by 4 * 16/32 = 2 pixels, cropped at random."""
    data = random_set(n=64, size=32)
    staged = loader(data, augmentation=Augmentation(crop_padding=4, flip="none", size_stages=((16, 1),)), batch_size=64)
    small = F.interpolate(data.images.float(), size=(16, 16), mode="bilinear", antialias=True).round().clamp(0, 255)
    padded = F.pad(small, (2, 2, 2, 2))
    order, plans = staged._epoch_plan(0)
    x, _ = all_batches(staged, 0)
    assert x.shape[1:] == (3, 16, 16)
    corners = [plans[0].offsets[row].tolist() for row in order]
    assert all(torch.equal(image, padded[row, :, r:r + 16, c:c + 16]) for image, row, (r, c) in zip(x, order, corners))
    assert {r for r, _ in corners} == set(range(5))  # 2 pixels of padding each side: 5 positions
    plain = loader(data, augmentation=Augmentation(crop_padding=4, flip="none"), batch_size=64)
    assert torch.equal(all_batches(staged, 1)[0], all_batches(plain, 1)[0])  # after the stage: full size, as without one
