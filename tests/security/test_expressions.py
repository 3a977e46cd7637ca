"""Issue 25 item 12: a '%' format's width and precision are bounded before formatting, as '*'
and '**' are: ``'%.999999999f' % 1.0`` was a MemoryError (exit 70), ``'%1999999999d' % 1``
peaked at 1.97 GB before exit 2."""
import resource
import time

import pytest

from cnncalc.errors import SpecError
from cnncalc.spec.loader import load_spec_text


def _spec(expr):
    return f'input: 8x8x3\nlayers:\n  - {{conv: 4, kernel: 3, name: "${{{expr}}}"}}\n'


@pytest.mark.parametrize("expr", ["'%.999999999f' % 1.0", "'%1999999999d' % 1", "'%9999999999999999999999s' % 'a'",
                                  "'%(a)5000d%(b)5001d' % 1", "'%*d' % 5", "'%.*f' % 1.0", "'%06000.6000f' % 1.0"])
def test_huge_format_widths_are_refused_before_formatting(expr):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.process_time()
    with pytest.raises(SpecError) as e:
        load_spec_text(_spec(expr), file="f.yaml").infer()
    assert "f.yaml:3" in str(e.value)
    assert "string_chars" in str(e.value) or "'*'" in str(e.value)
    assert time.process_time() - t < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: no 1 GB string


@pytest.mark.parametrize("expr,name", [("'b%03d' % 7", "b007"), ("'%.2f' % 3.14159", "3.14"), ("'%s-%%' % 'x'", "x-%"),
                                       ("'x%5d' % 1", "x    1")])
def test_ordinary_formats_still_work(expr, name):
    g = load_spec_text(_spec(expr), file="f.yaml")
    assert [n.name for n in g.layers] == [name]
