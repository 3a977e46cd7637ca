"""`verify` on issue 10's zoo at small inputs: the runtime executes every new layer type in
place, and its shapes, parameters, state, activation bytes and (centre-unit) receptive fields
agree with the analyzer — every one of the ten networks with its receptive fields. The
full-size runs are in the README / the report; these are the smallest inputs the specs'
strides allow."""
from __future__ import annotations

import pytest

import cnncalc
from cnncalc.runtime.verify import verify

pytestmark = pytest.mark.slow

CASES = [  # spec, reduced input
    ("mobilenet_v3_small", (32, 32, 3)),
    ("mobilenet_v3_large", (32, 32, 3)),
    ("efficientnet_b0", (32, 32, 3)),
    ("convnext_tiny", (32, 32, 3)),
    ("regnet_x_400mf", (32, 32, 3)),
    ("densenet201", (32, 32, 3)),
    ("inception_v3", (75, 75, 3)),
    ("unet", (188, 188, 1)),
    ("deeplabv3_head", (28, 28, 8)),
    ("c3d", (16, 32, 32, 3)),
]


@pytest.fixture(scope="module", autouse=True)
def one_numba_thread():
    """One numba thread, as on a shared 2-core machine that is the faster choice (numba's
    OpenMP workers spin-wait against the other processes); the previous count comes back."""
    from cnncalc.runtime import _numba
    before = _numba.get_threads()
    _numba.set_threads(1)
    yield
    _numba.set_threads(before)


@pytest.mark.parametrize("name,shape", CASES, ids=[c[0] for c in CASES])
def test_verify_issue10_zoo(name, shape):
    graph = cnncalc.load(name).infer(shape)
    items, _ = verify(graph, batch=1, fields=True, rf_units="centre")
    bad = [i.to_dict() for i in items if not i.ok]
    assert not bad, bad
    fields = [i for i in items if i.check.startswith("field")]
    assert fields and len({i.layer for i in fields}) == len(fields)  # a centre unit per checked layer
