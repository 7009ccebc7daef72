"""Types of the C extension ``monitor/_scan.c``."""

from collections.abc import Set

def token_places(low: str, words: list[str], wanted: Set[str]) -> dict[str, list[int]] | None: ...
