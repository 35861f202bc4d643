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
from typing import Any, Generic, TypeVar

from routeq.config import NamedConfig, Settings, register_component_config
from routeq.policies.base import Policy

C = TypeVar("C")  # what a registry's factories build


class ComponentRegistry(Generic[C]):
    """Factories of one kind of component (routing policies, escalation policies) by name; the
    component's config class is registered with the settings at the same time, so its section
    validates when they load."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[[Any, Settings], C]] = {}

    def register(
        self, config: type[NamedConfig]
    ) -> Callable[[Callable[[Any, Settings], C]], Callable[[Any, Settings], C]]:
        """Register the decorated factory as the component named by ``config``'s ``name``.
        One name from two places is an error, not a silent overwrite."""

        def decorate(factory: Callable[[Any, Settings], C]) -> Callable[[Any, Settings], C]:
            name = config.model_fields["name"].default
            known = self._factories.get(name)
            if known is not None and _origin(known) != _origin(factory):
                raise ValueError(
                    f"{self.kind} {name!r} is registered twice: by {_origin(known)} and "
                    f"{_origin(factory)}"
                )
            register_component_config(self.kind, config)
            self._factories[name] = factory
            return factory

        return decorate

    def build(self, section: NamedConfig, settings: Settings) -> C:
        """The component ``section`` names, built from it."""
        factory = self._factories.get(section.name)
        if factory is None:  # the settings validated the name: its module registered no factory
            raise LookupError(f"{self.kind} {section.name!r} has a config class but no factory")
        return factory(section, settings)


def _origin(factory: Callable[..., object]) -> str:
    """Where a factory is defined; a module imported again registers the same origin."""
    return f"{factory.__module__}.{getattr(factory, '__qualname__', factory)}"


POLICIES: ComponentRegistry[Policy] = ComponentRegistry("policy")
PolicyFactory = Callable[[Any, Settings], Policy]
F = TypeVar("F", bound=PolicyFactory)


def register_policy(config: type[NamedConfig]) -> Callable[[F], F]:
    """Register the decorated factory as the policy named by ``config``'s ``name``."""

    def decorate(factory: F) -> F:
        POLICIES.register(config)(factory)
        return factory

    return decorate


def build_configured_policy(settings: Settings) -> Policy:
    """The policy ``[routing.policy]`` names, built from its section."""
    return POLICIES.build(settings.routing.policy, settings)
