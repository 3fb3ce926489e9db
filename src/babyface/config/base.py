"""What every command's config shares: a pydantic model whose fields carry their own help, constraints and
command-line shape, one-line errors naming the option, and YAML, merge and recipe helpers.

Values are resolved in this order: field defaults < recipe < YAML file (``--config``) < flags < positionals.
Every run writes the resolved config next to its results.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from babyface.errors import BabyfaceError
from babyface.outputs import write_text

C = TypeVar("C", bound="ConfigModel")


def option(default: Any = ..., description: str = "", *, flag: str | None = None,
           metavar: str | None = None, group: str | None = None, positional: str | None = None,
           choices_from: str | None = None, default_factory: Callable[[], Any] | None = None,
           bare: str | None = None, **constraints: Any) -> Any:
    """A config field and its command-line shape.

    ``description`` is the ``--help`` text; ``constraints`` are pydantic's (``ge``, ``gt``, ``le``, ``lt``).
    ``flag`` replaces the flag made from the name (``--data`` for ``sources``), ``metavar`` names its value,
    ``group`` is the help section it is listed under (inherited by the fields of a nested config), and
    ``positional`` makes it a positional argument: ``"1"`` (required), ``"?"`` (optional) or ``"+"`` (one or more).
    ``choices_from`` names a registry of a higher layer (``"detectors"``) whose names are the field's choices: the
    command line offers and explains them; the code that looks a name up there refuses one that is not.
    ``bare`` lets the flag be given without a value, meaning ``bare`` (``--ray`` alone: a local Ray).
    """
    cli = {key: value for key, value in {"flag": flag, "metavar": metavar, "group": group, "positional": positional,
                                         "choices_from": choices_from, "bare": bare}.items() if value is not None}
    if default_factory is not None:
        return Field(default_factory=default_factory, description=description, json_schema_extra=cli or None, **constraints)
    return Field(default, description=description, json_schema_extra=cli or None, **constraints)


def zero_or_at_least(low: int) -> AfterValidator:
    """A constraint for counts where 0 switches a feature off and small positive values make no sense."""

    def check(value: int) -> int:
        if value != 0 and value < low:
            raise ValueError(f"must be 0 or >= {low}, got {value}")
        return value

    return AfterValidator(check)


class ConfigModel(BaseModel):
    """A command's options: attribute access and assignment, keyword construction, nested configs, unknown keys
    rejected, and every validation problem raised as one ``BabyfaceError`` line that names the flag and the fix."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True, allow_inf_nan=False)
    help_groups: ClassVar[tuple[str, ...]] = ()  # the order of the --help sections (else as the fields come)
    # as a nested section: its keys may also be given at the top level of the config it is nested in
    flat_keys: ClassVar[bool] = False

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise config_error(type(self), exc) from None

    # pydantic calls a model's own __init__ for nested configs too, which would report a nested problem without its
    # section; marked as its base __init__, nested configs are validated in one pass and errors keep their full path
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise config_error(type(self), exc) from None

    def replace(self: C, **changes: Any) -> C:
        """A validated copy with ``changes`` applied (what ``dataclasses.replace`` did for the old dataclass configs)."""
        return type(self)(**{**self.model_dump(), **changes})

    def to_dict(self) -> dict:
        """Plain YAML/JSON-ready values, nested configs as nested mappings."""
        return self.model_dump(mode="json")

    @model_validator(mode="before")
    @classmethod
    def _flat_keys_into_their_sections(cls, values: Any) -> Any:
        """Keys of a nested section that accepts them flat (``flat_keys``), given at this level, moved into it:
        ``detect_size: 320`` is ``faces: {detect_size: 320}``. Keys of this level itself are never moved."""
        if not isinstance(values, Mapping):
            return values
        values = dict(values)
        for name, field in cls.model_fields.items():
            section = field.annotation
            if not (_nested_config(section) and section.flat_keys):
                continue
            given = values.get(name)
            if not (given is None or isinstance(given, (Mapping, ConfigModel))):
                continue  # not a section: its own validation says so
            flat = {key: values.pop(key) for key in list(values) if key in section.model_fields and key not in cls.model_fields}
            if flat:
                nested = given.model_dump() if isinstance(given, ConfigModel) else dict(given or {})
                values[name] = {**nested, **flat}
        return values

    @field_validator("*", mode="before")
    @classmethod
    def _no_yes_no_confusion(cls, value: Any, info: Any) -> Any:
        """true/false only for switches, and never a number or text: ``epochs: true`` is a mistake, not 1 epoch,
        and YAML reads an unquoted ``off`` or ``no`` as false. A nested config given as null keeps its defaults."""
        annotation = cls.model_fields[info.field_name].annotation
        if annotation is bool:
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {value!r}")
        elif value is None and _nested_config(annotation):
            return annotation()
        elif isinstance(value, bool):
            hint = " (in YAML quote words such as 'off', 'no' and 'yes', which it reads as true or false)"
            raise ValueError(f"expected {_kind(annotation)}, got {str(value).lower()}{hint}")
        return value


def _nested_config(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, ConfigModel)


def _kind(annotation: Any) -> str:
    """How an error names what a field expects."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and args:
        return _kind(args[0])
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(annotation)))
    names = {int: "a whole number", float: "a number", str: "text", list: "a list", tuple: "a list", dict: "a mapping"}
    return names.get(typing.get_origin(annotation) or annotation, "a value")


# ---------------------------------------------------------------- one-line errors

def field_flag(name: str, field: Any) -> str:
    """The command-line flag of a config field: its ``flag``, else ``--`` and the name with hyphens."""
    return (field.json_schema_extra or {}).get("flag") or "--" + name.replace("_", "-")


def config_error(cls: type[ConfigModel], exc: ValidationError, where: str = "options") -> BabyfaceError:
    """pydantic's report as one line: the option (its flag, and its YAML key where that differs), the problem, the fix."""
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        section = [part for part in unknown[0]["loc"][:-1] if isinstance(part, str)]
        owner = _config_at(cls, section)
        names = ", ".join(".".join(str(p) for p in e["loc"]) for e in unknown)
        known = ", ".join(owner.model_fields)
        return BabyfaceError(f"{'.'.join(section) or where}: unknown option(s) {names}; known: {known}")
    error = errors[0]
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    name = _option_name(cls, [part for part in error["loc"] if isinstance(part, str)])
    return BabyfaceError(f"{name or where}: {_problem(cls, error)}{more}")


def _config_at(cls: type[ConfigModel], path: list[str]) -> type[ConfigModel]:
    for part in path:
        annotation = cls.model_fields[part].annotation if part in cls.model_fields else None
        if not _nested_config(annotation):
            break
        cls = annotation
    return cls


def _option_name(cls: type[ConfigModel], path: list[str]) -> str:
    """``--image-size`` for data_options.image_size; ``--augment (augment.enabled)`` where the flag hides the key;
    the key alone for what has no flag of its own (a nested section, a positional)."""
    if not path:
        return ""
    owner = _config_at(cls, path[:-1])
    field = owner.model_fields.get(path[-1])
    key = ".".join(path)
    if field is None or _nested_config(field.annotation) or (field.json_schema_extra or {}).get("positional"):
        return key
    flag = field_flag(path[-1], field)
    return flag if flag == "--" + path[-1].replace("_", "-") else f"{flag} ({key})"


def _problem(cls: type[ConfigModel], error: Mapping[str, Any]) -> str:
    kind, value = error["type"], error.get("input")
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    path = [part for part in error["loc"] if isinstance(part, str)]
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"must be {_range(_config_at(cls, path[:-1]).model_fields[path[-1]])}, got {shown}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error["ctx"]["expected"])  # pydantic writes "'a', 'b' or 'c'"
        return f"must be one of {', '.join(choices)}, got {shown}"
    if kind == "finite_number":
        return f"expected a finite number, got {shown}"
    expected = {"int": "a whole number", "float": "a number", "bool": "true or false", "string": "text",
                "list": "a list", "tuple": "a list", "dict": "a mapping of names to values",
                "model": "a mapping of options", "model_attributes": "a mapping of options"}
    for prefix, what in expected.items():
        if kind.startswith(prefix + "_"):
            return f"expected {what}, got {shown}"
    return f"{error['msg']}, got {shown}"


def _range(field: Any) -> str:
    """'>= 0 and <= 1' from a field's constraints."""
    parts = []
    for constraint in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(constraint, attr, None) is not None:
                parts.append(f"{sign} {getattr(constraint, attr)}")
    return " and ".join(parts)


# ---------------------------------------------------------------- dicts, YAML, recipes

def data_sources(config: Any) -> list[str]:
    """DATA and every --data of a train or evaluate config, in order, each once."""
    paths = [p for p in [config.data, *config.sources] if p]
    return list(dict.fromkeys(paths))


def to_dict(config: ConfigModel) -> dict:
    return config.to_dict()


def from_dict(cls: type[C], values: Mapping[str, Any] | None, where: str = "config") -> C:
    """Build ``cls`` from a (possibly nested, possibly partial) mapping; unknown keys are an error."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise BabyfaceError(f"{where}: expected a mapping of option names to values, got {type(values).__name__}")
    try:
        return cls.model_validate(dict(values))
    except ValidationError as exc:
        raise config_error(cls, exc, where) from None


def merge(config: C, overrides: Mapping[str, Any]) -> C:
    """Return a copy of ``config`` with ``overrides`` (nested mapping) applied and validated."""
    return from_dict(type(config), deep_update(to_dict(config), overrides))


def deep_update(base: Mapping[str, Any], updates: Mapping[str, Any]) -> dict:
    """``base`` with ``updates`` laid over it, nested sections merged key by key (model options replaced whole)."""
    out = dict(base)
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "model_args":
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: str | Path, what: str = "config file", flag: str = "--config",
              error: type[BabyfaceError] = BabyfaceError) -> dict:
    """A YAML file that must hold a mapping (empty → {}); one-line ``error`` naming the file otherwise."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found; check the {flag} path") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read {what} ({str(exc).splitlines()[0]}); fix its YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} must hold a YAML mapping of name: value")
    return data


def save_yaml(config: ConfigModel, path: str | Path) -> Path:
    return write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))


RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def load_recipe(name: str) -> dict:
    """Settings of a recipe: a name shipped with babyface (``recipes/NAME.yaml``) or a YAML file path."""
    path = RECIPES / f"{name}.yaml" if name in recipe_names() else Path(name)
    if not path.is_file():
        raise BabyfaceError(f"--recipe {name!r}: no such recipe; available: {', '.join(recipe_names())} (or give a YAML file)")
    return load_yaml(path, "recipe", "--recipe")


def with_recipe(values: dict) -> dict:
    """``values`` (from --config and flags) laid over the settings of the recipe they name, if any. Model options
    given for the recipe's own model are added to the recipe's (``--model-arg stem_stride=1`` keeps its width);
    another ``--model`` drops the recipe's options, which belong to its model."""
    if not values.get("recipe"):
        return values
    recipe = load_recipe(values["recipe"])
    merged = deep_update(recipe, values)
    same_model = values.get("model", recipe.get("model")) == recipe.get("model")
    if same_model and "model_args" in values:
        merged["model_args"] = {**recipe.get("model_args", {}), **values["model_args"]}
    elif not same_model and "model_args" not in values:
        merged["model_args"] = {}
    return merged


__all__ = ["ConfigModel", "option", "zero_or_at_least", "config_error", "field_flag", "data_sources",
           "to_dict", "from_dict", "merge", "deep_update", "load_yaml", "save_yaml", "RECIPES", "recipe_names",
           "load_recipe", "with_recipe"]
