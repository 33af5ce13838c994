"""A name -> factory registry, in the manner of timm's `register_model` / `create_model`."""

import fnmatch
import inspect
from collections.abc import Callable

from torch import nn

from deepernets.errors import UserError

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _FACTORIES[factory.__name__] = factory
    return factory


def names(pattern: str = "*") -> list[str]:
    return [n for n in _FACTORIES if fnmatch.fnmatch(n, pattern)]


def options(name: str) -> list[str]:
    """The keyword options a model takes besides in_channels and num_classes."""
    params = inspect.signature(_FACTORIES[name]).parameters
    return [p for p in params if p not in ("in_channels", "num_classes")]


def check(name: str, model_options: dict | None = None) -> None:
    if name not in _FACTORIES:
        raise UserError(f"unknown model '{name}'; choose one of: {', '.join(names())}")
    unknown = sorted(set(model_options or {}) - set(options(name)))
    if unknown:
        allowed = ", ".join(options(name)) or "none"
        raise UserError(f"model {name} has no option {', '.join(unknown)}; its options are: {allowed}")


def build(name: str, in_channels: int = 3, num_classes: int = 10, **model_options: object) -> nn.Module:
    """Build a registered model by name, like timm's create_model."""
    check(name, model_options)
    try:
        return _FACTORIES[name](in_channels=in_channels, num_classes=num_classes, **model_options)
    except ValueError as e:
        raise UserError(f"model {name}: {e}") from None
