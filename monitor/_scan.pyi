"""Types of the C extension ``monitor/_scan.c``."""

from collections.abc import Set
from typing import TypeVar

_T = TypeVar("_T", bound=tuple[object, ...])

def token_places(low: str, words: list[str], wanted: Set[str]) -> dict[str, list[int]] | None: ...
def new_tuple(cls: type[_T], /, *items: object) -> _T: ...
