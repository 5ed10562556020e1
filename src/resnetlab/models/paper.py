"""Figures reported in the paper, for comparison tables (He et al., 2016)."""

# Table 6: CIFAR-10 test error (%), option A, trained on 50k images with the paper's recipe.
# resnet110 is the best of 5 runs (mean 6.61 +- 0.16).
PAPER_CIFAR10_ERROR: dict[str, float] = {
    "resnet20": 8.75,
    "resnet32": 7.51,
    "resnet44": 7.17,
    "resnet56": 6.97,
    "resnet110": 6.43,
    "resnet1202": 7.93,
}

# Table 1: multiply-adds (G) at 224x224, with the stride in the first 1x1 conv of a bottleneck.
PAPER_IMAGENET_GMACS: dict[str, float] = {
    "resnet18": 1.8,
    "resnet34": 3.6,
    "resnet50": 3.8,
    "resnet101": 7.6,
    "resnet152": 11.3,
}
