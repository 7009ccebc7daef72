"""Types of the C extension ``monitor/_shingle.c``."""

def minhashes(
    words: list[bytes], positions: tuple[int, ...], seeds: tuple[int, ...], limits: tuple[int, ...]
) -> tuple[int, ...]: ...
