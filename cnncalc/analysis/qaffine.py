"""Quasi-affine expressions of one integer variable: exact sizes of a network as functions of
its input size.

A spatial size after any chain of convolutions, poolings (floor, ceil or exact rounding),
transposed convolutions, upsampling, crops and pads is an *affine combination of atoms* with
rational coefficients, where an atom is the variable itself (``H``) or ``floor(N / d)`` of an
integer-coefficient combination ``N`` of atoms. Such a function f satisfies
``f(v + p) = f(v) + slope·p`` for its period p: what the domain scan in
:mod:`cnncalc.analysis.symbolic` relies on.

Everything is exact: coefficients are ints or :class:`fractions.Fraction`, evaluation uses
integer floor division, and nothing is ever a float. Canonical forms (integer parts pulled out
of every floor, nested floors merged: ``floor((floor(x/a) + c)/b) = floor((x + c·a)/(a·b))``)
make equal expressions compare equal in the common cases, and print short:
``floor((H + 1)/2)`` prints ``ceil(H/2)``.
"""
from __future__ import annotations

from fractions import Fraction
from math import gcd, lcm


def _norm(c):
    """A Fraction that is whole as an int (ints print and evaluate faster)."""
    if c.__class__ is Fraction and c.denominator == 1:
        return c.numerator
    return c


class Floor:
    """``floor(num / d)``: ``num`` an :class:`Expr` with integer coefficients, ``d`` ≥ 2."""

    __slots__ = ("num", "d", "_key")

    def __init__(self, num: "Expr", d: int):
        self.num = num
        self.d = d
        self._key = ("floor", num.key, d)

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return other.__class__ is Floor and other._key == self._key

    def value(self, env, memo):
        v = memo.get(self)
        if v is None:
            v = memo[self] = self.num.value(env, memo) // self.d
        return v

    def slope(self) -> Fraction:
        return Fraction(self.num.slope(), self.d)

    def period(self) -> int:
        q = self.num.period()
        step = self.num.slope() * q  # an integer: num(v + q) = num(v) + step
        return q * self.d // gcd(int(step), self.d)

    def text(self) -> str:
        c = self.num.const
        if c == self.d - 1 and self.num.terms:  # floor((x + d − 1)/d) = ceil(x/d)
            inner = Expr(self.num.terms, 0)
            return f"ceil({inner.text(paren=True)}/{self.d})"
        return f"floor({self.num.text(paren=True)}/{self.d})"

    def py(self) -> str:
        return f"(({self.num.py()})//{self.d})"

    def sort_key(self):
        return (1, self.text())


class Var:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __hash__(self):
        return hash(("var", self.name))

    def __eq__(self, other):
        return other.__class__ is Var and other.name == self.name

    def value(self, env, memo):
        return env[self.name]

    def slope(self):
        return 1

    def period(self):
        return 1

    def text(self):
        return self.name

    py = text

    def sort_key(self):
        return (0, self.name)


class Expr:
    """``const + Σ coef·atom`` (immutable). ``terms`` is a tuple of (atom, coef), sorted."""

    __slots__ = ("terms", "const", "key", "_slope")

    def __init__(self, terms=(), const=0):
        if isinstance(terms, dict):
            terms = tuple(sorted(((a, _norm(c)) for a, c in terms.items() if c), key=lambda t: t[0].sort_key()))
        self.terms = terms
        self.const = _norm(const)
        self.key = (tuple((a.__class__ is Var and a.name or a._key, c) for a, c in terms), self.const)
        self._slope = None

    # -- construction ------------------------------------------------------------------------
    @staticmethod
    def var(name: str) -> "Expr":
        return Expr(((Var(name), 1),), 0)

    @staticmethod
    def constant(c) -> "Expr":
        return Expr((), c)

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, Expr) and other.key == self.key

    def __add__(self, other):
        if not isinstance(other, Expr):
            return Expr(self.terms, self.const + other)
        d = dict(self.terms)
        for a, c in other.terms:
            d[a] = d.get(a, 0) + c
        return Expr(d, self.const + other.const)

    __radd__ = __add__

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, k):
        """Times a number (an int or a Fraction); products of two expressions are Products."""
        if isinstance(k, Expr):
            raise TypeError("an Expr times an Expr is not affine: use a Product")
        if not k:
            return Expr((), 0)
        return Expr(tuple((a, _norm(c * k)) for a, c in self.terms), self.const * k)

    __rmul__ = __mul__

    def exact_div(self, d: int) -> "Expr":
        """``self / d`` as a real number (a whole number wherever the rounding is exact)."""
        return self * Fraction(1, d)

    def denominator(self) -> int:
        """The least m with integer coefficients in m·self."""
        m = 1
        for c in [c for _, c in self.terms] + [self.const]:
            if c.__class__ is Fraction:
                m = lcm(m, c.denominator)
        return m

    def floor_div(self, d: int) -> "Expr":
        """``floor(self / d)``, in canonical form."""
        # integer coefficients: floor(e/d) = floor(e·m / (d·m))
        m = self.denominator()
        num = self * m if m > 1 else self
        den = d * m
        g = den
        for _, c in num.terms:
            g = gcd(g, int(c))
        g = gcd(g, int(num.const))
        if g > 1:
            num, den = Expr(tuple((a, int(c) // g) for a, c in num.terms), int(num.const) // g), den // g
        if den == 1:
            return num
        # pull the whole multiples of den out of every coefficient (atoms are whole numbers)
        out: dict = {}
        rest: dict = {}
        for a, c in num.terms:
            q, r = divmod(int(c), den)
            if q:
                out[a] = q
            if r:
                rest[a] = r
        qc, rc = divmod(int(num.const), den)
        if not rest:
            return Expr(out, qc)
        g = den
        for c in rest.values():
            g = gcd(g, c)
        if g > 1:  # floor((g·x + r)/(g·d')) = floor((x + floor(r/g))/d')
            rest = {a: c // g for a, c in rest.items()}
            rc, den = rc // g, den // g
            if den == 1:
                return Expr(out, qc) + Expr(rest, rc)
        if len(rest) == 1:
            (a, c), = rest.items()
            if a.__class__ is Floor and c == 1:
                # floor((floor(N/a) + r)/den) = floor((N + r·a)/(a·den))
                inner = (a.num + rc * a.d).floor_div(a.d * den)
                return Expr(out, qc) + inner
        atom = Floor(Expr(rest, rc), den)
        out[atom] = out.get(atom, 0) + 1
        return Expr(out, qc)

    def ceil_div(self, d: int) -> "Expr":
        return (self + (d - 1)).floor_div(d)

    # -- reading -----------------------------------------------------------------------------
    @property
    def is_constant(self) -> bool:
        return not self.terms

    def value(self, env: dict, memo: dict | None = None):
        memo = {} if memo is None else memo
        v = self.const
        for a, c in self.terms:
            v += c * a.value(env, memo)
        return _norm(v) if v.__class__ is Fraction else v

    def slope(self) -> Fraction:
        if self._slope is None:
            s = 0
            for a, c in self.terms:
                s += c * a.slope()
            self._slope = Fraction(s)
        return self._slope

    def period(self) -> int:
        """p with self(v + p) = self(v) + slope·p for every integer v, slope·p whole."""
        p = 1
        for a, _ in self.terms:
            p = lcm(p, a.period())
        step = self.slope() * p
        return p * step.denominator

    def atoms(self):
        for a, _ in self.terms:
            yield a
            if a.__class__ is Floor:
                yield from a.num.atoms()

    def text(self, paren: bool = False) -> str:
        """``H``, ``ceil(H/2)``, ``floor((H - 1)/4) + 1``, ``H/32``: plain ASCII."""
        parts = []
        for a, c in self.terms:
            t = a.text()
            if c.__class__ is Fraction:
                n, q = c.numerator, c.denominator
                body = t if abs(n) == 1 else f"{abs(n)}*{t}"
                parts.append(("-" if n < 0 else "+", f"{body}/{q}"))
            else:
                parts.append(("-" if c < 0 else "+", t if abs(c) == 1 else f"{abs(c)}*{t}"))
        if self.const or not parts:
            c = self.const
            parts.append(("-" if c < 0 else "+", str(abs(c))))
        s = ("-" if parts[0][0] == "-" else "") + parts[0][1]
        for sign, body in parts[1:]:
            s += f" {sign} {body}"
        if paren and (len(parts) > 1 or parts[0][0] == "-" or "/" in parts[0][1] and "(" not in parts[0][1]):
            return f"({s})"
        return s

    def py(self) -> str:
        """Integer-only Python (``//`` is floor division): exact wherever the network is."""
        m = self.denominator()
        num = self * m if m > 1 else self
        parts = [f"{int(c)}*{a.py()}" if c != 1 else a.py() for a, c in num.terms]
        if num.const or not parts:
            parts.append(str(int(num.const)))
        s = " + ".join(parts).replace("+ -", "- ")
        return f"({s})//{m}" if m > 1 else s

    def __repr__(self):
        return f"Expr({self.text()})"


class Poly:
    """``Σ coef · Π factors``: a sum of products of per-axis sizes (Exprs), int coefficients.

    Terms with the same factors merge; constant factors fold into the coefficient. Kept as
    products of sizes (not expanded) so that each term reads as 'per position × h·w'."""

    __slots__ = ("terms",)

    def __init__(self, terms: dict | None = None):
        self.terms: dict[tuple, int] = terms if terms is not None else {}

    @staticmethod
    def product(coef, factors) -> "Poly":
        fs = []
        for f in factors:
            if f.is_constant:
                coef = coef * f.const
            else:
                fs.append(f)
        coef = _norm(Fraction(coef)) if coef.__class__ is Fraction else coef
        if not coef:
            return Poly()
        return Poly({tuple(sorted(fs, key=lambda e: e.text())): coef})

    def __add__(self, other: "Poly") -> "Poly":
        t = dict(self.terms)
        for k, c in other.terms.items():
            t[k] = t.get(k, 0) + c
            if not t[k]:
                del t[k]
        return Poly(t)

    def scaled(self, k: int) -> "Poly":
        return Poly({f: c * k for f, c in self.terms.items()}) if k else Poly()

    @property
    def is_constant(self) -> bool:
        return all(not f for f in self.terms)

    def value(self, env: dict, memo: dict | None = None):
        memo = {} if memo is None else memo
        total = 0
        for fs, c in self.terms.items():
            v = c
            for f in fs:
                v *= f.value(env, memo)
            total += v
        return _norm(Fraction(total)) if total.__class__ is Fraction else total

    def _ordered(self):
        """Terms in the order they came (the network's order), the constant last."""
        return sorted(self.terms.items(), key=lambda t: not t[0])

    def text(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for fs, c in self._ordered():
            body = "*".join(f.text(paren=True) for f in fs)
            if c.__class__ is Fraction:
                mag = f"{abs(c.numerator)}*{body}/{c.denominator}" if body else str(abs(c))
            elif not body:
                mag = f"{abs(c):,}"
            else:
                mag = body if abs(c) == 1 else f"{abs(c):,}*{body}"
            parts.append(("-" if c < 0 else "+", mag))
        s = ("-" if parts[0][0] == "-" else "") + parts[0][1]
        for sign, body in parts[1:]:
            s += f" {sign} {body}"
        return s

    def py(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for fs, c in self._ordered():
            if c.__class__ is Fraction:  # (a whole number on the domain)
                body = "*".join([str(c.numerator)] + [f"({f.py()})" for f in fs])
                parts.append(f"({body})//{c.denominator}")
            else:
                parts.append("*".join([str(c)] + [f"({f.py()})" for f in fs]))
        return " + ".join(parts)

    def to_json(self) -> list[dict]:
        return [{"coef": c if c.__class__ is int else str(c), "factors": [f.py() for f in fs]}
                for fs, c in self.terms.items()]

    def __repr__(self):
        return f"Poly({self.text()})"


def eval_py(src: str, env: dict) -> int:
    """Evaluate a ``py()`` string with integers only (the machine-checkable form): numbers,
    the variable names in ``env``, ``+ - * //`` and parentheses; anything else is an error."""
    import ast

    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and n.value.__class__ is int:
            return n.value
        if isinstance(n, ast.Name) and n.id in env:
            return env[n.id]
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        if isinstance(n, ast.BinOp):
            a, b = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Add):
                return a + b
            if isinstance(n.op, ast.Sub):
                return a - b
            if isinstance(n.op, ast.Mult):
                return a * b
            if isinstance(n.op, ast.FloorDiv):
                return a // b
        raise ValueError(f"not an integer formula: {ast.dump(n)[:80]}")

    return ev(ast.parse(src, mode="eval"))
