import math

import pytest

from cnncalc.runtime.schedule import make_schedule


def test_constant():
    s = make_schedule("constant", 0.05)
    assert [s.lr(e) for e in (0, 1, 100)] == [0.05] * 3
    assert s.state_dict() == {}


def test_step_divides_by_ten_every_k_epochs():
    s = make_schedule("step", 0.1, step_size=3)
    got = [s.lr(e) for e in range(10)]
    expect = [0.1] * 3 + [0.01] * 3 + [0.001] * 3 + [0.0001]
    assert got == pytest.approx(expect, rel=1e-12)
    assert make_schedule("step", 1.0, step_size=2, gamma=0.5).lr(5) == 0.25


def test_cosine_from_first_principles():
    s = make_schedule("cosine", 0.2, epochs=4)
    # cos(0)=1 → 0.2; cos(pi/4)=√2/2 → 0.1(1+√2/2); cos(pi/2)=0 → 0.1; cos(3pi/4) → 0.1(1-√2/2); cos(pi) → 0
    r = math.sqrt(2) / 2
    expect = [0.2, 0.1 * (1 + r), 0.1, 0.1 * (1 - r), 0.0, 0.0]
    assert [s.lr(e) for e in range(6)] == pytest.approx(expect, abs=1e-15)
    m = make_schedule("cosine", 1.0, epochs=2, min_lr=0.2)
    assert [m.lr(e) for e in range(3)] == pytest.approx([1.0, 0.6, 0.2])
    with pytest.raises(ValueError, match="total number of epochs"):
        make_schedule("cosine", 0.1)


def run_plateau(s, accs, start=0):
    lrs = []
    for e, acc in enumerate(accs, start):
        lrs.append(s.lr(e))
        s.end_epoch(e, acc)
    return lrs


def test_plateau_divides_after_patience_epochs_without_improvement():
    s = make_schedule("plateau", 0.1, patience=2)
    accs = [0.50, 0.60, 0.60, 0.59,   # epochs 2 and 3 don't beat 0.60 → ÷10 from epoch 4
            0.61,                     # improvement resets the count
            0.61, 0.70,               # one bad epoch, then better: no cut
            0.69, float("nan"),       # NaN is not an improvement → ÷10 from epoch 9
            0.80]
    lrs = run_plateau(s, accs)
    expect = [0.1] * 4 + [0.01] * 5 + [0.001]
    assert lrs == pytest.approx(expect, rel=1e-12)
    assert s.best == 0.80 and s.reductions == 2 and s.bad_epochs == 0


def test_plateau_min_lr_and_threshold():
    s = make_schedule("plateau", 0.1, patience=1, min_lr=0.005, threshold=0.01)
    lrs = run_plateau(s, [0.5, 0.505, 0.509, 0.52, 0.52, 0.52])
    # 0.505 and 0.509 are within threshold of 0.5 → cuts after epochs 1 and 2 (0.01, then floor 0.005)
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.005, 0.005, 0.005])
    assert s.reductions == 2      # the clamp to min_lr after epoch 4 is not a reduction


def test_plateau_state_round_trip_matches_uninterrupted():
    accs = [0.1, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3]
    ref = run_plateau(make_schedule("plateau", 1.0, patience=3), accs)
    a = make_schedule("plateau", 1.0, patience=3)
    first = run_plateau(a, accs[:4])
    state = a.state_dict()
    assert state == {"current_lr": 1.0, "best": 0.2, "bad_epochs": 2, "reductions": 0}
    b = make_schedule("plateau", 1.0, patience=3)
    b.load_state_dict(dict(state))
    assert first + run_plateau(b, accs[4:], start=4) == ref
    # bad epochs 2,3,4 → cut after epoch 4; 0.3 at epoch 5 improves; bad 6,7,8 → cut after epoch 8
    assert ref == pytest.approx([1.0] * 5 + [0.1] * 4 + [0.01])


def test_schedule_errors():
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'linear'"):
        make_schedule("linear", 0.1)
    with pytest.raises(ValueError, match="validation accuracy"):
        make_schedule("plateau", 0.1).end_epoch(0)
    with pytest.raises(ValueError, match="needs"):
        make_schedule("plateau", 0.1).load_state_dict({"current_lr": 1})
    with pytest.raises(ValueError, match="no state"):
        make_schedule("step", 0.1).load_state_dict({"x": 1})
    with pytest.raises(ValueError, match="> 0"):
        make_schedule("constant", 0)
