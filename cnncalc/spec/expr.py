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

from cnncalc import limits
from cnncalc.errors import short

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


def evaluate(source: str, scope: dict):
    """Evaluate one expression; every failure (syntax, types, overflow, a limit) is an ExprError.

    Bounded: the source length (``expr_chars``), its size (``expr_nodes``), integers
    (``int_digits``), strings (``string_chars``); floats must stay finite.
    """
    src = source.strip()
    tree, shown, names = _parse(src)
    # the value follows from the source, the values of the names it reads and the limits:
    # specs evaluate the same few expressions over and over (600 module instances: $w, ...)
    key = [src, limits.max_int(), limits.get("string_chars")]
    for name in names:
        v = scope.get(name, _MISSING)
        cls = v.__class__
        if cls is not int and cls is not str and cls is not bool and v is not _MISSING:
            key = None  # (floats: 0.0 == -0.0; lists and mappings: not hashable)
            break
        key.append(cls)
        key.append(v)
    if key is not None:
        key = tuple(key)
        hit = _VALUES.get(key, _MISSING)
        if hit is not _MISSING:
            return hit
    try:
        value = _checked(_eval(tree.body, scope, shown), shown)
    except ExprError:
        raise
    except ZeroDivisionError:
        raise ExprError(f"division by zero in ${{{shown}}}") from None
    except OverflowError:
        raise ExprError(f"${{{shown}}} overflows (a number too large for a float)") from None
    except (TypeError, ValueError, ArithmeticError):
        raise ExprError(f"cannot compute ${{{shown}}} with these values") from None
    except RecursionError:
        raise ExprError(f"${{{shown}}} nests too deeply") from None
    if key is not None:
        if len(_VALUES) >= 4096:
            _VALUES.clear()
        _VALUES[key] = value
    return value


_MISSING = object()
_VALUES: dict[tuple, object] = {}  # evaluate()'s results by source, limits and the values read


@functools.lru_cache(maxsize=4096)
def _parse(src: str):
    """Parse and size-check an expression once (specs repeat the same expressions a lot)."""
    if len(src) > limits.get("expr_chars"):
        raise ExprError(f"the expression ${{{short(src, 40)}}} is longer than "
                        f"{limits.get('expr_chars')} characters; {limits.LIMITS['expr_chars'].how_to_raise()}")
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExprError(f"cannot read the expression {short(src)}") from None
    if sum(1 for _ in ast.walk(tree)) > limits.get("expr_nodes"):
        raise ExprError(f"the expression ${{{short(src, 40)}}} has more than {limits.get('expr_nodes')} "
                        f"parts; {limits.LIMITS['expr_nodes'].how_to_raise()}")
    shown = short(src, 60)[1:-1] if len(src) > 58 else src
    names = tuple(sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}))
    return tree, shown, names


def _checked(v, src):
    """Bound every intermediate result: integers, strings, finite floats."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        if abs(v) >= limits.max_int():
            raise ExprError(f"${{{src}}} is a number with more than {limits.get('int_digits')} digits; "
                            f"{limits.LIMITS['int_digits'].how_to_raise()}")
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise ExprError(f"${{{src}}} is not a finite number ({v})")
        if abs(v) >= limits.max_int():
            raise ExprError(f"${{{src}}} is a number beyond 10^{limits.get('int_digits')}; "
                            f"{limits.LIMITS['int_digits'].how_to_raise()}")
    elif isinstance(v, complex):
        raise ExprError(f"${{{src}}} is not a real number")
    elif isinstance(v, str):
        if len(v) > limits.get("string_chars"):
            raise ExprError(f"${{{src}}} makes a string longer than {limits.get('string_chars'):,} "
                            f"characters; {limits.LIMITS['string_chars'].how_to_raise()}")
    return v


def _pow(left, right, src):
    """``**`` with both operands bounded before computing: the result's size is estimated
    from log10, so (((10**64)**64)**64) is refused without being computed."""
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (left, right)):
        raise TypeError
    if abs(left) > 1 and right > 0:
        digits = right * math.log10(abs(left))
        if digits > limits.get("int_digits") + 1:
            raise ExprError(f"${{{src}}} is a number with more than {limits.get('int_digits')} digits; "
                            f"{limits.LIMITS['int_digits'].how_to_raise()}")
    out = left ** right  # base in [-1, 1] or a negative exponent: small, and fast to compute
    if isinstance(out, complex):
        raise ExprError(f"${{{src}}} is not a real number")
    return out


_OPERANDS = (int, float, str)


def _binop(op, left, right, src):
    if not (isinstance(left, _OPERANDS) and isinstance(right, _OPERANDS)):
        raise ExprError(f"${{{src}}}: arithmetic works on numbers and strings, not lists or mappings")
    if isinstance(op, ast.Pow):
        return _pow(left, right, src)
    if isinstance(op, ast.Mult) and (isinstance(left, str) or isinstance(right, str)):
        s, k = (left, right) if isinstance(left, str) else (right, left)
        if isinstance(k, int) and not isinstance(k, bool) and len(s) * max(k, 0) > limits.get("string_chars"):
            raise ExprError(f"${{{src}}} makes a string longer than {limits.get('string_chars'):,} "
                            f"characters; {limits.LIMITS['string_chars'].how_to_raise()}")
    if isinstance(op, ast.Mod) and isinstance(left, str):
        _check_format(left, src)
    return _BINOPS[type(op)](left, right)


# a '%' conversion: flags, width, precision, type (printf-style string formatting)
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.?)")


def _check_format(fmt: str, src):
    """``fmt % x`` with its widths and precisions bounded before formatting (as ``*`` and
    ``**`` are): ``'%.999999999f' % 1.0`` would build a billion digits."""
    cap = limits.get("string_chars")
    total = 0
    for m in _CONVERSION.finditer(fmt):
        width, precision = m.group(1), m.group(2)
        if "*" in (width, precision):
            raise ExprError(f"${{{src}}}: a '*' width or precision in a '%' format is not supported; write the number")
        for part in (width, precision):
            if part:
                if len(part) > 6:
                    total = cap + 1
                    break
                total += int(part)
        if total > cap:
            raise ExprError(f"${{{src}}} formats a string longer than {cap:,} characters (a '%' width or "
                            f"precision); {limits.LIMITS['string_chars'].how_to_raise()}")


def _eval(node, scope, src):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return _checked(node.value, src)
    if isinstance(node, ast.Name):
        if node.id in scope:
            return scope[node.id]
        if node.id in ("True", "False"):
            return node.id == "True"
        known = ", ".join(sorted(str(k) for k in scope)) or "none"
        raise ExprError(f"unknown name {node.id!r} in ${{{src}}} (known here: {short(known, 200)[1:-1]})")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left, scope, src), _eval(node.right, scope, src)
        return _checked(_binop(node.op, left, right, src), src)
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
        return _checked(_FUNCS[node.func.id](*[_eval(a, scope, src) for a in node.args]), src)
    raise ExprError(f"${{{src}}}: only arithmetic, comparisons, 'x if c else y' and "
                    f"{', '.join(sorted(_FUNCS))} are allowed")


def substitute(value, scope: dict):
    """Replace ``$name`` / ``${expr}`` in strings (recursively in lists and dicts).

    A string that is exactly one reference takes the value's own type (``$w`` → 64);
    a reference inside a longer string is formatted into it (``conv${n}`` → ``conv3``).
    Integral floats (``${w/2}`` with w = 64) become ints.
    """
    if isinstance(value, str) and "$" in value:
        whole, parts = _template(value)
        if whole is not None:
            return _tidy(evaluate(whole, scope))
        return "".join([p if literal else str(_tidy(evaluate(p, scope))) for literal, p in parts])
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


def names_read(value) -> frozenset | None:
    """The scope names ``substitute(value, scope)`` reads, or None when that cannot be told
    without evaluating (an expression that does not parse: substitute reports it)."""
    if isinstance(value, str):
        if "$" not in value:
            return frozenset()
        whole, parts = _template(value)
        sources = [whole] if whole is not None else [p for literal, p in parts if not literal]
        out: set = set()
        for src in sources:
            try:
                out.update(_parse(src.strip())[2])
            except ExprError:
                return None
        return frozenset(out)
    if isinstance(value, (list, dict)):
        out = set()
        for v in (value.values() if isinstance(value, dict) else value):
            part = names_read(v)
            if part is None:
                return None
            out |= part
        return frozenset(out)
    return frozenset()


@functools.lru_cache(maxsize=4096)
def _template(value: str):
    """A string with references, read once: (the expression, None) when the whole string is
    one reference, else (None, its pieces as (True, literal text) / (False, expression))."""
    m = _WHOLE.match(value)
    if m:
        return m.group(1) or m.group(2), None
    parts, at = [], 0
    for mm in _PART.finditer(value):
        if mm.start() > at:
            parts.append((True, value[at:mm.start()]))
        parts.append((False, mm.group(1) or mm.group(2)))
        at = mm.end()
    if at < len(value):
        parts.append((True, value[at:]))
    return None, tuple(parts)


def _tidy(v):
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
