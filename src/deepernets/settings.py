"""Settings declared once: each is a dataclass field made by `setting()`, which holds its default, help text and
checks; its annotation is its type. Everything else is derived from these declarations: the conversion of YAML
values (`convert`), the checks (`check`) and the command line's flags (`add_flags`, `given`).

A check failure reads "must be RULE, got VALUE", after the setting's name: "--epochs must be at least 1, got 0".
"""

import argparse
import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deepernets.errors import UserError


@dataclass(frozen=True)
class Spec:
    """How one setting is explained and checked. Bounds apply to a number, and to each number of a list."""

    help: str
    choices: tuple[str, ...] = ()  # a str setting's values; for a number setting, the words it takes too ("auto")
    minimum: float | None = None
    above: float | None = None  # exclusive lower bound
    below: float | None = None  # exclusive upper bound
    pattern: tuple[str, str] | None = None  # a regular expression the whole value matches, and how to say it
    metavar: str | None = None
    where: bool = False  # where or how a run is done, not what it computes: it may change when the run is resumed
    flag: bool = True  # False: no flag of its own (model_options has one flag per option)


def setting(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field that declares one setting; a list or dict default is copied for each instance."""
    metadata = {"spec": Spec(help, **spec)}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def same_as(declaration: type, name: str) -> Any:
    """A field declaring the same setting as `name` of `declaration`, for a setting that appears in two places."""
    field = _field(declaration, name)
    return dataclasses.field(default=field.default, default_factory=field.default_factory, metadata=field.metadata)


def specs(declaration: type) -> dict[str, tuple[Any, Spec]]:
    """Each setting's type and Spec, in declaration order."""
    hints = typing.get_type_hints(declaration)
    return {f.name: (hints[f.name], f.metadata["spec"]) for f in dataclasses.fields(declaration)}


def default(declaration: type, name: str) -> Any:
    field = _field(declaration, name)
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def _field(declaration: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(declaration) if f.name == name)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


# -- YAML values --------------------------------------------------------------------------------------------------


def convert(declaration: type, values: Mapping[str, Any], source: str, kind: str = "setting") -> dict[str, Any]:
    """Plain values (YAML) as their settings' types: YAML reads 5e-4 as a string. Unknown names raise UserError."""
    declared = specs(declaration)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise UserError(f"{source}: unknown {kind}(s) {', '.join(unknown)}; valid ones: {', '.join(sorted(declared))}")
    converted = {}
    for name, value in values.items():
        try:
            converted[name] = _as_type(value, declared[name][0])
        except (TypeError, ValueError):
            raise UserError(f"{source}: {kind} {name} must be {_type_name(declared[name][0])}, got {value!r}") from None
    return converted


def _as_type(value: Any, hint: Any) -> Any:
    """The value as the first option of `hint` that takes it, or TypeError/ValueError. Bools are never numbers."""
    for option in _options(hint):
        try:
            return _as_option(value, option)
        except (TypeError, ValueError):
            continue
    raise ValueError(value)


def _as_option(value: Any, option: Any) -> Any:
    if option is type(None):
        if value is not None:
            raise TypeError
        return None
    if isinstance(value, bool) != (option is bool):
        raise TypeError
    if option in (bool, str):
        if not isinstance(value, option):
            raise TypeError
        return value
    if option in (int, float):
        return option(str(value) if option is int else value)
    if typing.get_origin(option) is list:
        if not isinstance(value, list):
            raise TypeError
        return [_as_type(v, typing.get_args(option)[0]) for v in value]
    if typing.get_origin(option) is dict:
        if not isinstance(value, dict | None):
            raise TypeError
        return dict(value or {})
    raise TypeError


def _options(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if typing.get_origin(hint) in (types.UnionType, typing.Union) else (hint,)


def _type_name(hint: Any) -> str:
    return " or ".join(str(o) if typing.get_origin(o) else o.__name__ for o in _options(hint))


# -- checks --------------------------------------------------------------------------------------------------------


def check(values: Any, subject: Callable[[str], str] = flag_name) -> None:
    """Raise UserError for the first declared setting of the dataclass instance `values` that breaks its checks."""
    for name, (hint, spec) in specs(type(values)).items():
        wrong = problem(getattr(values, name), hint, spec)
        if wrong:
            raise UserError(f"{subject(name)} {wrong}")


def problem(value: Any, hint: Any, spec: Spec) -> str | None:
    """What is wrong with a value of the setting's type, as "must be RULE, got VALUE"; None when nothing is."""
    if isinstance(value, list):
        element = typing.get_args(hint)[0]
        bad = next((v for v in value if _broken_rule(v, element, spec)), None)
        return None if bad is None else f"must each be {_broken_rule(bad, element, spec)}, got {bad!r}"
    rule = _broken_rule(value, hint, spec)
    return None if rule is None else f"must be {rule}, got {value!r}"


def _broken_rule(value: Any, hint: Any, spec: Spec) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if _in_bounds(value, spec) else _bounds(spec)
    if spec.pattern and not re.fullmatch(spec.pattern[0], value):
        return spec.pattern[1]
    if spec.choices and value not in spec.choices:
        if float in _options(hint):  # a number, or one of a few words
            number = " ".join(filter(None, ["a number", _bounds(spec)]))
            return f"{number} or {_one_of([repr(c) for c in spec.choices])}"
        return _one_of(spec.choices)
    return None


def _in_bounds(value: float, spec: Spec) -> bool:
    return (
        (isinstance(value, int) or math.isfinite(value))  # inf passes every lower bound, and nothing trains on it
        and (spec.minimum is None or value >= spec.minimum)
        and (spec.above is None or value > spec.above)
        and (spec.below is None or value < spec.below)
    )


def _bounds(spec: Spec) -> str:
    low = f"[{_number(spec.minimum)}" if spec.minimum is not None else ""
    low = low or (f"({_number(spec.above)}" if spec.above is not None else "")
    if spec.below is not None:
        return f"in {low}, {_number(spec.below)})" if low else f"< {_number(spec.below)}"
    if spec.minimum is not None:
        return f"at least {_number(spec.minimum)}"
    return f"> {_number(spec.above)}" if spec.above is not None else ""


def _number(bound: float) -> str:
    return f"{bound:,}" if isinstance(bound, int) else f"{bound:g}"


def _one_of(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


# -- command-line flags --------------------------------------------------------------------------------------------


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    declaration: type,
    only: Collection[str] | None = None,
    *,
    overrides: bool = True,
    show_defaults: bool = True,
    known: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """A flag for each setting of `declaration` (or each named in `only`), converted and checked as it is parsed.

    overrides: every flag defaults to None, so that only the flags given override other settings (see `given`);
    otherwise a flag defaults to its setting's default. known: valid values that only an upper layer can list (the
    model registry), shown in the help.
    """
    for name, (hint, spec) in specs(declaration).items():
        if not spec.flag or (only is not None and name not in only):
            continue
        value = default(declaration, name)
        help_text = spec.help
        if known and name in known:
            help_text += f"; one of: {', '.join(known[name])}"
        if show_defaults and value not in (None, [], {}):
            help_text += f" (default: {_shown(value)})"
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        options: dict[str, Any] = {"dest": name, "default": None if overrides else value, "help": help_text}
        element = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if bool in _options(hint):
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = _flag_parser(hint, spec)
            words_only = spec.choices and float not in _options(element)  # lr's "auto" is no list of choices
            options["metavar"] = spec.metavar or ("{" + ",".join(spec.choices) + "}" if words_only else None)
            options["nargs"] = "+" if element is not hint else None
        parser.add_argument(flag_name(name), **options)


def given(args: argparse.Namespace, declaration: type, only: Collection[str] | None = None) -> dict[str, Any]:
    """The settings of `declaration` (or those named in `only`) whose flags were given (added with overrides=True)."""
    names = [name for name in specs(declaration) if only is None or name in only]
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _flag_parser(hint: Any, spec: Spec) -> Callable[[str], Any]:
    in_list = typing.get_origin(hint) is list
    element = typing.get_args(hint)[0] if in_list else hint
    kind = next(o for o in _options(element) if o is not type(None))  # a flag cannot say None

    def parse(text: str) -> Any:
        try:
            value = _as_type(text, element)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {_type_name(kind)}, got '{text}'") from None
        wrong = problem([value] if in_list else value, hint, spec)
        if wrong:
            raise argparse.ArgumentTypeError(wrong)
        return value

    return parse


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return " ".join(_shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
