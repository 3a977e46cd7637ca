import numpy as np
import pytest

from cnncalc.runtime.optim import SGD


def test_momentum_and_coupled_weight_decay_by_hand():
    # lr 0.1, momentum 0.9, weight decay 0.01; w (2-D) is decayed, b (1-D bias) is not.
    w = np.array([[1.0, -2.0]])
    b = np.array([0.5])
    params = {"fc.w": w, "fc.b": b}
    opt = SGD(lr=0.1, momentum=0.9, weight_decay=0.01)
    grads = [
        {"fc.w": np.array([[0.2, 0.4]]), "fc.b": np.array([1.0])},
        {"fc.w": np.array([[0.1, -0.3]]), "fc.b": np.array([1.0])},
        {"fc.w": np.array([[0.0, 0.0]]), "fc.b": np.array([0.0])},
    ]
    # step 1: g = [.2 + .01*1, .4 + .01*-2] = [.21, .38]; buf = g; w = [1 - .021, -2 - .038]
    #         bias: buf = 1; b = .5 - .1 = .4
    opt.step(params, grads[0])
    assert np.allclose(w, [[0.979, -2.038]], rtol=0, atol=1e-12)
    assert np.allclose(b, [0.4], rtol=0, atol=1e-12)
    # step 2: g = [.1 + .00979, -.3 - .02038] = [.10979, -.32038]
    #         buf = .9*[.21, .38] + g = [.29879, .02162]; w = [.979 - .029879, -2.038 - .002162]
    #         bias: buf = .9 + 1 = 1.9; b = .4 - .19 = .21
    opt.step(params, grads[1])
    assert np.allclose(w, [[0.949121, -2.040162]], rtol=0, atol=1e-12)
    assert np.allclose(b, [0.21], rtol=0, atol=1e-12)
    # step 3: g = [.00949121, -.02040162]; buf = .9*[.29879, .02162] + g = [.27840221, -.00094362]
    #         w = [.949121 - .027840221, -2.040162 + .000094362]; bias: buf 1.71, b = .21 - .171
    opt.step(params, grads[2])
    assert np.allclose(w, [[0.921280779, -2.040067638]], rtol=0, atol=1e-12)
    assert np.allclose(b, [0.039], rtol=0, atol=1e-12)
    assert np.allclose(opt.buffers["fc.w"], [[0.27840221, -0.00094362]], rtol=0, atol=1e-12)
    assert opt.steps == 3
    # updated in place, gradients untouched
    assert params["fc.w"] is w and grads[0]["fc.w"].tolist() == [[0.2, 0.4]]


def test_plain_sgd_and_decay_everything_option():
    p = {"b": np.array([2.0])}
    opt = SGD(lr=0.5, momentum=0.0, weight_decay=0.1, decay=lambda name, a: True)
    opt.step(p, {"b": np.array([1.0])})
    # g = 1 + .1*2 = 1.2; p = 2 - .5*1.2 = 1.4 ; no buffers without momentum
    assert p["b"].tolist() == pytest.approx([1.4], abs=1e-15) and opt.buffers == {}


def test_nesterov_by_hand():
    # PyTorch: buf = mu*buf + g; d = g + mu*buf; p -= lr*d
    p = {"b": np.array([1.0])}
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    opt.step(p, {"b": np.array([1.0])})   # buf = 1; d = 1 + .9 = 1.9; p = 1 - .19 = .81
    assert p["b"][0] == pytest.approx(0.81, abs=1e-15)
    opt.step(p, {"b": np.array([0.5])})   # buf = .9 + .5 = 1.4; d = .5 + 1.26 = 1.76; p = .81 - .176
    assert p["b"][0] == pytest.approx(0.634, abs=1e-15)


def test_nesterov_equals_sutskever_lookahead_form():
    # Second method: Sutskever et al. (2013): v <- mu v - lr grad(theta + mu v); theta <- theta + v.
    # PyTorch's form tracks p = theta + mu v (substitute v = -lr buf), so p_t == theta_t + mu v_t.
    A = np.array([[3.0, 0.5], [0.5, 1.0]])
    grad = lambda x: A @ x                      # f(x) = x^T A x / 2
    lr, mu = 0.05, 0.9
    theta = np.array([1.0, -1.0])
    v = np.zeros(2)
    p = {"x": theta.copy().reshape(1, 2)}
    opt = SGD(lr=lr, momentum=mu, nesterov=True)
    for _ in range(6):
        opt.step(p, {"x": grad(p["x"][0]).reshape(1, 2)})
        v = mu * v - lr * grad(theta + mu * v)
        theta = theta + v
        assert np.allclose(p["x"][0], theta + mu * v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum,nesterov,wd", [(0.9, False, 5e-4), (0.9, True, 1e-2), (0.0, False, 1e-3),
                                                  (0.5, False, 0.0)])
def test_fused_update_gives_the_numpy_forms_bits(dtype, momentum, nesterov, wd):
    # a C-contiguous parameter takes the one-pass numba update, a Fortran-ordered copy of it
    # the numpy operations: the same values to the last bit, step after step (and the
    # momentum buffers too), for a decayed weight and an undecayed bias
    r = np.random.default_rng(4)
    w = r.standard_normal((6, 5)).astype(dtype)
    b = r.standard_normal(5).astype(dtype)
    fused = {"w": w.copy(), "b": b.copy()}
    plain = {"w": np.asfortranarray(w.copy()), "b": b.copy()[::-1].copy()[::-1]}  # b: a reversed view
    assert fused["w"].flags.c_contiguous and not plain["w"].flags.c_contiguous
    assert not plain["b"].flags.c_contiguous
    opts = [SGD(0.05, momentum=momentum, nesterov=nesterov, weight_decay=wd) for _ in range(2)]
    for step in range(4):
        g = {"w": r.standard_normal((6, 5)).astype(dtype), "b": r.standard_normal(5).astype(dtype)}
        opts[0].step(fused, g)
        opts[1].step(plain, {"w": np.asfortranarray(g["w"]), "b": g["b"]})
        for k in ("w", "b"):
            assert np.array_equal(fused[k], plain[k]), (step, k)
            if momentum:
                assert np.array_equal(opts[0].buffers[k], opts[1].buffers[k]), (step, k)
    assert not np.array_equal(fused["w"], w)  # it did move


def test_state_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    init = {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": np.zeros(3, np.float32)}
    grads = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in init.items()}
             for _ in range(5)]
    ref = {k: v.copy() for k, v in init.items()}
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for g in grads:
        opt.step(ref, g)
    part = {k: v.copy() for k, v in init.items()}
    o1 = SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for g in grads[:3]:
        o1.step(part, g)
    state = o1.state_dict()
    assert set(state) == {"steps", "momentum_buffer/w", "momentum_buffer/b"}
    o1.buffers["w"][:] = 99                     # exported state is a copy
    o2 = SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    o2.load_state_dict(state, part)
    for g in grads[3:]:
        o2.step(part, g)
    assert o2.steps == 5
    for k in ref:
        assert np.array_equal(part[k], ref[k]) and part[k].dtype == np.float32


def test_errors():
    p = {"w": np.zeros((2, 2))}
    with pytest.raises(ValueError, match="no gradient for \\['w'\\]"):
        SGD(0.1).step(p, {"v": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="shape"):
        SGD(0.1).step(p, {"w": np.zeros(4)})
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(0.1, momentum=0, nesterov=True)
    with pytest.raises(ValueError, match="momentum"):
        SGD(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="not a parameter"):
        SGD(0.1).load_state_dict({"momentum_buffer/z": np.zeros(1)}, p)
    with pytest.raises(ValueError, match="has shape"):
        SGD(0.1).load_state_dict({"momentum_buffer/w": np.zeros(3)}, p)


# ----------------------------------------------------------------------------- AdamW
def test_adamw_by_hand():
    from cnncalc.runtime.optim import AdamW

    # lr 0.1, betas (0.5, 0.75), eps 0, weight decay 0.1; w (2-D) decayed, b (1-D) not
    w, b = np.array([[1.0]]), np.array([2.0])
    opt = AdamW(lr=0.1, betas=(0.5, 0.75), eps=0.0, weight_decay=0.1)
    opt.step({"w": w, "b": b}, {"w": np.array([[0.4]]), "b": np.array([-2.0])})
    # step 1: w = 1·(1 - .01) = .99; m = .5·.4 = .2, v = .25·.16 = .04; m̂ = .4, v̂ = .16:
    #         w = .99 - .1·.4/.4 = .89 (Adam's first step is lr·sign(g)); b = 2 + .1 = 2.1
    assert w[0, 0] == pytest.approx(0.89, abs=1e-15) and b[0] == pytest.approx(2.1, abs=1e-15)
    opt.step({"w": w, "b": b}, {"w": np.array([[0.0]]), "b": np.array([-2.0])})
    # step 2: w = .89·.99 = .8811; m = .1, v = .03; m̂ = .1/.75, v̂ = .03/.4375
    #         w = .8811 - .1·(.1/.75)/sqrt(.03/.4375)
    assert w[0, 0] == pytest.approx(0.8811 - 0.1 * (0.1 / 0.75) / np.sqrt(0.03 / 0.4375), abs=1e-14)
    assert b[0] == pytest.approx(2.2, abs=1e-14)  # a constant gradient moves by lr each step
    assert opt.steps == 2


@pytest.mark.slow
def test_adamw_equals_torch():
    torch = pytest.importorskip("torch")
    from cnncalc.runtime.optim import AdamW

    rng = np.random.default_rng(0)
    w0, b0 = rng.standard_normal((3, 4)), rng.standard_normal(4)
    grads = [(rng.standard_normal((3, 4)), rng.standard_normal(4)) for _ in range(5)]
    params = {"w": w0.copy(), "b": b0.copy()}
    opt = AdamW(lr=0.01, weight_decay=0.05)
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    topt = torch.optim.AdamW([{"params": [tw], "weight_decay": 0.05}, {"params": [tb], "weight_decay": 0.0}],
                             lr=0.01)
    for k, (gw, gb) in enumerate(grads):
        lr = 0.01 * (1 - k / 5)  # a schedule: the rate changes between steps
        opt.step(params, {"w": gw, "b": gb}, lr=lr)
        for g in topt.param_groups:
            g["lr"] = lr
        tw.grad, tb.grad = torch.tensor(gw), torch.tensor(gb)
        topt.step()
    assert np.allclose(params["w"], tw.detach().numpy(), rtol=0, atol=1e-13)
    assert np.allclose(params["b"], tb.detach().numpy(), rtol=0, atol=1e-13)


def test_adamw_state_round_trip_and_errors():
    from cnncalc.runtime.optim import AdamW, make_optimizer

    rng = np.random.default_rng(1)
    p1 = {"w": rng.standard_normal((2, 2))}
    p2 = {"w": p1["w"].copy()}
    gs = [{"w": rng.standard_normal((2, 2))} for _ in range(4)]
    a = AdamW(lr=0.01, weight_decay=0.1)
    for g in gs:
        a.step(p1, g)
    b = AdamW(lr=0.01, weight_decay=0.1)
    for g in gs[:2]:
        b.step(p2, g)
    c = AdamW(lr=0.01, weight_decay=0.1)
    c.load_state_dict(b.state_dict(), p2)
    for g in gs[2:]:
        c.step(p2, g)
    assert np.array_equal(p1["w"], p2["w"]) and c.steps == 4
    with pytest.raises(ValueError, match="another optimizer"):
        c.load_state_dict({"momentum_buffer/w": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="shape"):
        c.load_state_dict({"exp_avg/w": np.zeros(3), "exp_avg_sq/w": np.zeros(3)}, p2)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lamb", 0.1)
