"""Name -> factory registries, one per kind of swappable part (backend, click model, mechanism,
bidder). ``Registry.make(name, **config)`` builds one and lists the known names in its error."""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@REGISTRY.register("name")`` on a class or factory function."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return deco

    def make(self, name: str, **config: Any) -> T:
        return self.factory(name)(**config)

    def factory(self, name: str) -> Callable[..., T]:
        """The factory (class or function) registered as ``name``."""
        if name not in self._factories:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {sorted(self._factories)}")
        return self._factories[name]

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
