"""The choices of the data options, torch-free: the config and the command line list them without
loading torch, the loaders check against the same tuples."""

FLIP_MODES = ("random", "alternate", "none")  # per image, every other epoch (mirrored), never
PHOTO_AUGMENTATIONS = ("random-resized-crop", "scale")  # torchvision's reference, or the paper's
STAGE_MODES = ("resize", "crop")  # progressive resizing: the whole image made smaller, or a smaller crop of it
