"""Dagster ``Config`` classes derived from the pure layer's parameter dataclasses."""

import dataclasses
import typing

import pydantic
from dagster import Config


def config_from_params(params_class: type, name: str) -> type[Config]:
    """A Dagster ``Config`` class with the fields and defaults of a frozen params dataclass.

    The pure layer stays free of Dagster, and the launchpad in the UI still lists every
    parameter with its unit in its name and its literature default.
    """
    hints = typing.get_type_hints(params_class)
    fields: dict[str, tuple[object, object]] = {}
    for field in dataclasses.fields(params_class):
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        fields[field.name] = (hints[field.name], default)
    model = pydantic.create_model(name, __base__=Config, **fields)  # type: ignore[call-overload]
    model.__doc__ = params_class.__doc__
    return model
