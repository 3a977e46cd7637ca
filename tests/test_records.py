"""The dataclasses whose ``__init__``, repr and ``==`` are written out by hand (to spare every
cold start the code ``@dataclass`` generates) must behave as ``@dataclass`` would: the same
parameters and defaults as their fields, the same repr and equality, and fresh containers for
``default_factory`` fields. Each check is against a twin made by ``@dataclass`` itself."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from cnncalc.analysis.report import LayerStats, Report
from cnncalc.report.render import Column, TableView

CLASSES = [LayerStats, Report, TableView]


def _twin(cls):
    """The same fields, made into a real dataclass by @dataclass."""
    ns = {"__annotations__": {f.name: f.type for f in dataclasses.fields(cls)}}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            ns[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            ns[f.name] = dataclasses.field(default_factory=f.default_factory)
    return dataclasses.dataclass(type(cls.__name__, (), ns))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_init_takes_the_fields_in_order_with_their_defaults(cls):
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields):
        if f.default is not dataclasses.MISSING:
            assert p.default == f.default, f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert repr(p.default) == "<factory>", f.name
        else:
            assert p.default is inspect.Parameter.empty, f.name
    assert cls.__match_args__ == tuple(f.name for f in fields)


def _required(cls):
    return {f.name: f"v-{f.name}" for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_repr_equality_and_factories_as_dataclass_makes_them(cls):
    args = _required(cls)
    twin = _twin(cls)
    a, b, t = cls(**args), cls(**args), twin(**args)
    assert repr(a).split("(", 1)[1] == repr(t).split("(", 1)[1]
    assert repr(a).startswith(cls.__qualname__ + "(")
    assert a == b and not (a != b)
    assert dataclasses.asdict(a) == dataclasses.asdict(t)
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:  # a fresh container per instance
            assert getattr(a, f.name) == f.default_factory()
            assert getattr(a, f.name) is not getattr(b, f.name)
    changed = dataclasses.replace(a, **{next(iter(args)): "other"})
    assert changed != a and (a == t) is False  # (a different class: never equal, as dataclasses)
    with pytest.raises(TypeError):
        hash(a)


def test_layer_stats_from_analyze_round_trip_through_replace():
    import cnncalc

    r = cnncalc.analyze("lenet5")
    assert dataclasses.replace(r) == r
    assert dataclasses.replace(r.layers[0]) == r.layers[0]
    assert TableView("t", [Column("a", "A")], [{"a": 1}]).footer == []


def test_analysis_rows_are_rows_init_would_make():
    # _analyze sets a row's attributes itself (in __init__'s order, values kept inline): every
    # field must be its own, none left to a class default, in the order __init__ sets them
    from cnncalc import analyze
    from cnncalc.analysis.report import LayerStats
    for spec, kw in [("cifar_resnet56", {}), ("googlenet", {"batch": 4, "bias": False}), ("lenet5", {})]:
        for row in analyze(spec, **kw).layers:
            assert list(vars(row)) == list(LayerStats._fields), (spec, row.name)
            made = LayerStats(**{f: getattr(row, f) for f in LayerStats._fields})
            assert made == row and vars(made) == vars(row)
