"""The routing-policy registry: a name, its config class, and a factory.

A new policy is one module::

    class ShortFirstConfig(NamedConfig):
        name: Literal["short-first"] = "short-first"
        max_tokens: int = 200

    @register_policy(ShortFirstConfig)
    def short_first(config: ShortFirstConfig, settings: Settings) -> Policy: ...

and ``[routing] plugins = ["my_module"]`` with ``[routing.policy] name = "short-first"`` selects
it. The config class is validated when the settings load, like every other section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from routeq.config import NamedConfig, Settings, register_component_config
from routeq.policies.base import Policy

PolicyFactory = Callable[[Any, Settings], Policy]
F = TypeVar("F", bound=PolicyFactory)

_FACTORIES: dict[str, PolicyFactory] = {}


def register_policy(config: type[NamedConfig]) -> Callable[[F], F]:
    """Register the decorated factory as the policy named by ``config``'s ``name``."""

    def decorate(factory: F) -> F:
        name = config.model_fields["name"].default
        known = _FACTORIES.get(name)
        if known is not None and _origin(known) != _origin(factory):
            raise ValueError(
                f"policy {name!r} is registered twice: by {_origin(known)} and {_origin(factory)}"
            )
        register_component_config("policy", config)
        _FACTORIES[name] = factory
        return factory

    return decorate


def _origin(factory: PolicyFactory) -> str:
    """Where a factory is defined; a module imported again registers the same origin."""
    return f"{factory.__module__}.{getattr(factory, '__qualname__', factory)}"


def registered_policies() -> list[str]:
    return sorted(_FACTORIES)


def build_configured_policy(settings: Settings) -> Policy:
    """The policy ``[routing.policy]`` names, built from its section."""
    section = settings.routing.policy
    factory = _FACTORIES.get(section.name)
    if factory is None:  # the settings validated the name: its module registered no factory
        raise LookupError(f"policy {section.name!r} has a config class but no factory")
    return factory(section, settings)
