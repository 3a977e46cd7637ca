

def test_dropout_mask_changes_every_step_and_repeats_by_position(files):
    """The executor draws dropout from default_rng([net.seed, layer]); the trainer sets
    net.seed from (seed, epoch, batch), so masks differ between steps but are reproducible."""
    from cnncalc.spec.loader import load_spec_text

    net = T.TrainNet(load_spec_text(SPEC.replace("dropout: 0.25", "dropout: 0.5")), dtype="float64")
    x = np.random.default_rng(1).random((16, 1, 8, 8))
    outs = []
    for b in (0, 1, 0):
        net.seed = T.step_seed(3, 0, b)
        outs.append(net.forward(x, train=True)["out"])
    assert not np.array_equal(outs[0], outs[1])
    assert np.array_equal(outs[0], outs[2])
    assert T.step_seed(3, 1, 0) != T.step_seed(3, 0, 1) != T.step_seed(4, 0, 1)
