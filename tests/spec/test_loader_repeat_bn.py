"""Two loader fixes found while writing the zoo (MobileNet v2, its classifier conv)."""
import cnncalc
from cnncalc.spec.loader import load_spec_text


def test_item_bn_false_overrides_defaults_bn_true():
    g = load_spec_text("input: 8x8x3\ndefaults:\n  conv: {kernel: 1, bn: true}\nlayers:\n"
                       "  - {conv: 4, name: a}\n  - {conv: 5, bn: false, name: b}\n")
    r = cnncalc.analyze(g)
    assert "a_bn" in r and "b_bn" not in r
    assert r.totals["params"] == (3 * 4 + 4) + 2 * 4 + (4 * 5 + 5)


def test_explicit_repeat_1_binds_its_own_counter_inside_a_module_with_arg_n():
    # module arg n = 2 → repeat: ${n - 1} = 1; the repeated item's n is its counter (1), not 2
    text = ("input: 8x8x3\nmodules:\n  row:\n    args: [n]\n    layers:\n"
            "      - {conv: 4, kernel: 1, name: first}\n"
            "      - {conv: 4, kernel: 1, repeat: \"${n - 1}\", name: \"c${n + 1}\"}\n"
            "layers:\n  - {row: [2], name: r}\n  - {row: [3], name: s}\n")
    names = [n.name for n in load_spec_text(text).layers]
    assert names == ["r/first", "r/c2", "s/first", "s/c2", "s/c3"]
