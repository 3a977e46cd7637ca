"""The network gradient check with a ReLU kink inside the centred difference's step.

cifar_resnet20 at 16x16 failed `cnncalc gradcheck` with correct gradients (conv1_bn.beta 1.2e-4
at seed 0; 19 tensors ~1e-3 at seed 1): a parameter moved by h = 1e-5 moved a ReLU input across
zero. Here the kink is put there on purpose: one ReLU input 2e-6 from zero, the step 1e-5."""
from __future__ import annotations

import numpy as np
import pytest

from cnncalc.runtime.executor import Net
from cnncalc.runtime.gradcheck import TOL, centred_differences, check_network, rel_error, settle_kinks
from cnncalc.spec.loader import load_spec_text

SPEC = """name: kink
input: 5x5x2
layers:
  - {conv: 3, kernel: 3, name: c}
  - {relu: {}, name: r}
  - {flatten: {}, name: flat}
  - {fc: 4, name: out}
"""
H = 1e-5


def _net_with_a_kink(at=2e-6):
    """A float64 net and input whose ReLU input (0, 0, 1, 1) sits ``at`` above zero: moving
    the conv's bias 0 by ±H crosses it."""
    g = load_spec_text(SPEC, file="kink.yaml").infer()
    net = Net(g, dtype="float64", seed=0)
    x = np.random.default_rng(3).standard_normal((2, 2, 5, 5))
    net.forward(x, train=True, keep=True)
    z = net.outputs_seen["c"][0, 0, 1, 1]
    net.params["c"]["bias"][0] -= z - at
    net.forward(x, train=True, keep=True)
    assert abs(net.outputs_seen["c"][0, 0, 1, 1] - at) < 1e-12
    return net, x


def _bias_check(checks):
    (c,) = [c for c in checks if c.tensor == "c.bias"]
    return c


def test_the_kink_is_within_the_step_and_plain_differences_are_wrong():
    # the premise: without settling, the correct gradient of c.bias fails by far
    net, x = _net_with_a_kink()
    labels = np.array([1, 2])
    from cnncalc.runtime.kernels.loss import softmax_cross_entropy

    def f():
        net.forward(x, train=True)
        return softmax_cross_entropy(net.logits("out"), labels)[0]

    net.loss(x, labels, train=True)
    ana = net.grads["c"]["bias"].copy()
    num = np.array([_diff(f, net.params["c"]["bias"], i, H) for i in range(3)])
    assert rel_error(num, ana) > 100 * TOL


def test_network_check_settles_the_kink_and_passes():
    net, x = _net_with_a_kink()
    checks = check_network(net, x, entries=100, h=H, seed=0)
    bad = [c.to_dict() for c in checks if not c.ok]
    assert not bad, bad
    c = _bias_check(checks)
    assert c.kinks >= 1 and c.unsettled == 0
    assert c.to_dict()["kinks"] == c.kinks
    # tensors without a kink in their step are not re-taken
    assert all(k.kinks == 0 for k in checks if k.tensor in ("out.weight", "out.bias"))


def test_a_wrong_gradient_still_fails_after_settling():
    # settling looks at f only: a gradient off by 1e-4 (relative) fails whatever the kinks
    net, x = _net_with_a_kink()
    real = net.backward

    def off(*a, **kw):
        out = real(*a, **kw)
        net.grads["c"]["bias"][1] *= 1 + 1e-4
        return out

    net.backward = off
    c = _bias_check(check_network(net, x, entries=100, h=H, seed=0))
    assert not c.ok and c.rel_error > TOL


@pytest.mark.parametrize("at", [3e-6, 8e-7])  # settles while two steps lie inside: h/16 < at
def test_settle_kinks_on_a_function_with_a_kink(at):
    # f(w) = Σ relu(w − t) + w²/2, a kink `at` from w[0]; f'(w) = [w > t] + w
    t = np.array([0.5 - at, -1.0, 2.0])
    w = np.array([0.5, 0.3, 0.7])
    f = lambda: float(np.sum(np.maximum(w - t, 0)) + np.sum(w ** 2) / 2)  # noqa: E731
    exact = (w > t) + w
    idx = np.arange(3)
    plain = np.array([_diff(f, w, i, H) for i in idx])
    assert abs(plain[0] - exact[0]) > 0.01  # the kink is within the step
    num, moved, unsettled = settle_kinks(f, w, idx, plain, H, np.linalg.norm(plain))
    assert moved == 1 and len(unsettled) == 0
    assert rel_error(num, exact) < TOL


def test_settle_kinks_leaves_out_what_never_settles():
    # a kink 1e-12 from the point: closer than H / 2**(KINK_HALVINGS - 1)
    t = np.array([0.5 - 1e-12, -1.0])
    w = np.array([0.5, 0.3])
    f = lambda: float(np.sum(np.maximum(w - t, 0)))  # noqa: E731
    plain = np.array([_diff(f, w, i, H) for i in range(2)])
    num, moved, unsettled = settle_kinks(f, w, np.arange(2), plain, H, np.linalg.norm(plain))
    assert list(unsettled) == [0] and moved == 1


def _diff(f, w, i, h):
    return centred_differences(f, w, np.array([i]), h)[0]
