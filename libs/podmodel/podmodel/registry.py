"""Which kinds podbus runs, and the names users may call them by.

Every top-level type registers itself with `@register`; the codecs, manifest
loader, API and podctl look kinds up here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from podmodel.meta import KubeObject

T = TypeVar("T", bound=type[KubeObject])

_BY_KIND: dict[str, type[KubeObject]] = {}
_ALIASES: dict[str, str] = {}
NAMESPACED: dict[str, bool] = {}


def register(*aliases: str, namespaced: bool = True) -> Callable[[T], T]:
    def deco(cls: T) -> T:
        kind = cls.KIND
        _BY_KIND[kind] = cls
        NAMESPACED[kind] = namespaced
        for alias in (kind, kind.lower(), *aliases):
            _ALIASES[alias.lower()] = kind
        return cls

    return deco


def kind_type(kind: str) -> type[KubeObject] | None:
    """The type of a kind by its name, plural or short name (any case)."""
    canonical = _ALIASES.get(kind.lower())
    return _BY_KIND.get(canonical) if canonical else None


def canonical_kind(kind: str) -> str | None:
    return _ALIASES.get(kind.lower())


def known_kinds() -> list[str]:
    return sorted(_BY_KIND)


def is_namespaced(kind: str) -> bool:
    return NAMESPACED.get(canonical_kind(kind) or kind, True)
