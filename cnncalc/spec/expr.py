"""A tiny, safe expression language for specs: ``${4*w}``, ``${2 if n == 1 else 1}``.

Only arithmetic, comparisons, boolean logic, conditional expressions, names from the scope
and a handful of whitelisted functions are allowed; anything else (attributes, calls to
other names, subscripts, lambdas, comprehensions) is refused. Nothing is ever ``eval``-ed.
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CMPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_FUNCS = {"min": min, "max": max, "int": int, "round": round, "abs": abs,
          "ceil": math.ceil, "floor": math.floor}

_WHOLE = re.compile(r"^\$\{([^{}]*)\}$|^\$([A-Za-z_][A-Za-z0-9_]*)$")
_PART = re.compile(r"\$\{([^{}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class ExprError(ValueError):
    pass


@functools.lru_cache(maxsize=4096)
def _parse(source: str):
    """The parsed expression (cached: a repeated block evaluates the same text many times)."""
    try:
        return ast.parse(source.strip(), mode="eval").body
    except SyntaxError:
        raise ExprError(f"cannot read the expression {source!r}") from None


def evaluate(source: str, scope: dict):
    return _eval(_parse(source), scope, source)


def _eval(node, scope, src):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in scope:
            return scope[node.id]
        if node.id in ("True", "False"):
            return node.id == "True"
        known = ", ".join(sorted(scope)) or "none"
        raise ExprError(f"unknown name {node.id!r} in ${{{src}}} (known here: {known})")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left, scope, src), _eval(node.right, scope, src)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ExprError(f"exponent too large in ${{{src}}}")
        try:
            return _BINOPS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExprError(f"division by zero in ${{{src}}}") from None
        except TypeError:
            raise ExprError(f"cannot compute ${{{src}}} with these values") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, scope, src))
    if isinstance(node, ast.BoolOp):
        vals = [_eval(v, scope, src) for v in node.values]
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, scope, src)
        for op, comp in zip(node.ops, node.comparators):
            if type(op) not in _CMPS:
                raise ExprError(f"comparison not allowed in ${{{src}}}")
            right = _eval(comp, scope, src)
            if not _CMPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, scope, src) else node.orelse, scope, src)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS
            and not node.keywords):
        return _FUNCS[node.func.id](*[_eval(a, scope, src) for a in node.args])
    raise ExprError(f"${{{src}}}: only arithmetic, comparisons, 'x if c else y' and "
                    f"{', '.join(sorted(_FUNCS))} are allowed")


def substitute(value, scope: dict):
    """Replace ``$name`` / ``${expr}`` in strings (recursively in lists and dicts).

    A string that is exactly one reference takes the value's own type (``$w`` → 64);
    a reference inside a longer string is formatted into it (``conv${n}`` → ``conv3``).
    Integral floats (``${w/2}`` with w = 64) become ints.
    """
    if isinstance(value, str) and "$" in value:
        m = _WHOLE.match(value)
        if m:
            return _tidy(evaluate(m.group(1) or m.group(2), scope))
        return _PART.sub(lambda mm: str(_tidy(evaluate(mm.group(1) or mm.group(2), scope))), value)
    if isinstance(value, list):
        out = type(value)(substitute(v, scope) for v in value)
        for attr in ("line", "item_lines"):
            if hasattr(value, attr):
                setattr(out, attr, getattr(value, attr))
        return out
    if isinstance(value, dict):
        out = type(value)((k, substitute(v, scope)) for k, v in value.items())
        for attr in ("line", "key_lines"):
            if hasattr(value, attr):
                setattr(out, attr, getattr(value, attr))
        return out
    return value


def _tidy(v):
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
