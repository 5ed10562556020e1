"""Model zoo: the paper's CIFAR and ImageNet ResNets, plain twins, ResNeXt-50; one registry."""

from resnetlab.models import cifar, imagenet  # noqa: F401  (registers the models)
from resnetlab.models.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]
