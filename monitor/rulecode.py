"""A rule's condition tree compiled to one Python function, so deciding a candidate rule costs a
few set operations instead of a method call per node.

The generated source holds only operators and indexes into a tuple of constants (atom ids and
sets, topics, minimums, ``near`` evaluators): no text from a rule file is ever part of the code,
and rules of the same shape share one compiled function. ``Node.ev`` stays the specification;
``tests/test_match.py`` checks that both agree on random rules and articles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from monitor.matchnodes import AtomNode, BoolNode, ClassifierNode, Context, NearNode, Node

# matched atom ids, topic probabilities, the article's context -> does the condition hold?
Predicate = Callable[[set[int], Mapping[str, float], Context], bool]


class _Source:
    def __init__(self) -> None:
        self.consts: list[Any] = []

    def const(self, value: Any) -> str:
        self.consts.append(value)
        return f"K[{len(self.consts) - 1}]"

    def expr(self, node: Node) -> str:
        if isinstance(node, AtomNode):
            return f"({self.const(node.atom)} in m)"
        if isinstance(node, ClassifierNode):
            return f"(p.get({self.const(node.topic)}, 0.0) >= {self.const(float(node.min))})"
        if isinstance(node, NearNode):
            return f"{self.const(node.ev)}(c)"
        if isinstance(node, BoolNode):
            return self._bool(node)
        raise TypeError(f"unknown condition node {type(node).__name__}")

    def _bool(self, node: BoolNode) -> str:
        kids = node.children
        if kids and all(isinstance(k, AtomNode) for k in kids):
            atoms = self.const(frozenset(k.atom for k in kids if isinstance(k, AtomNode)))
            if node.op == "all":
                return f"({atoms} <= m)"
            return f"(not m.isdisjoint({atoms}))" if node.op == "any" else f"m.isdisjoint({atoms})"
        parts = [self.expr(k) for k in kids]
        if node.op == "all":
            return "(" + " and ".join(parts) + ")" if parts else "True"
        joined = "(" + " or ".join(parts) + ")" if parts else "False"
        return joined if node.op == "any" else f"(not {joined})"


def compile_predicate(root: Node) -> Predicate:
    """``root.ev`` as one generated function of (matched, probabilities, context)."""
    source = _Source()
    try:
        body = source.expr(root)
        made: Predicate = _factory(body)(tuple(source.consts))
    except (RecursionError, MemoryError, SyntaxError):  # a pathologically deep rule
        return lambda m, p, c: root.ev(c)
    return made


@functools.lru_cache(maxsize=4096)
def _factory(body: str) -> Callable[[tuple[Any, ...]], Predicate]:
    """The compiled ``make(K)`` for one shape of condition: rules of the same shape (most of a
    large rule set) share it and differ only in their constants."""
    namespace: dict[str, Any] = {}
    code = compile(f"def make(K):\n    return lambda m, p, c: {body}\n", "<rule>", "exec")
    exec(code, {"__builtins__": {}}, namespace)
    factory: Callable[[tuple[Any, ...]], Predicate] = namespace["make"]
    return factory
