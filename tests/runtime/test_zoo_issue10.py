"""`verify` on issue 10's zoo at small inputs: the runtime executes every new layer type in
place, and its shapes, parameters, state, activation bytes and (centre-unit) receptive fields
agree with the analyzer. The full-size runs are in the README / the report; these are the
smallest inputs the specs' strides allow."""
from __future__ import annotations

import pytest

import cnncalc
from cnncalc.runtime.verify import verify

pytestmark = pytest.mark.slow

CASES = [  # spec, reduced input, receptive fields checked
    ("mobilenet_v3_small", (32, 32, 3), True),
    ("mobilenet_v3_large", (32, 32, 3), False),
    ("efficientnet_b0", (32, 32, 3), False),
    ("convnext_tiny", (32, 32, 3), False),
    ("regnet_x_400mf", (32, 32, 3), False),
    ("densenet201", (32, 32, 3), False),
    ("inception_v3", (75, 75, 3), False),
    ("unet", (188, 188, 1), False),
    ("deeplabv3_head", (28, 28, 8), True),
    ("c3d", (16, 32, 32, 3), False),
]


@pytest.mark.parametrize("name,shape,fields", CASES, ids=[c[0] for c in CASES])
def test_verify_issue10_zoo(name, shape, fields):
    graph = cnncalc.load(name).infer(shape)
    items, _ = verify(graph, batch=1, fields=fields, rf_units="centre")
    bad = [i.to_dict() for i in items if not i.ok]
    assert not bad, bad
    assert any(i.ok for i in items)
