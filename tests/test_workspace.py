"""``summarize --workspace``: each conv's extra memory per algorithm.

im2col, FFT and the runtime's Winograd F(4x4, 3x3) are checked against the buffers the runtime
really allocates (its kept columns; the spectra numpy.fft returns to it; the padded chunk and
transformed tiles the Winograd forward allocates), the textbook Winograd F(2x2, 3x3) column
against hand arithmetic, and the runtime's choice against its own choose_algo.
"""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc.analysis.workspace import fast_len, workspace
from cnncalc.cli import main


def _spec(tmp_path, body, input_="16x16x8"):
    p = tmp_path / "w.yaml"
    p.write_text(f"name: w\ninput: {input_}\nlayers:\n" + "".join(f"  - {line}\n" for line in body))
    return str(p)


def test_winograd_by_hand(tmp_path):
    """56x56x64 → 64, 3x3/s1/p1: 28*28 = 784 tiles of 2x2; Lavin & Gray's V = 16*64*784 =
    802,816, U = 16*64*64 = 65,536, M = 16*64*784 = 802,816: 1,671,168 elements."""
    rep = workspace(cnncalc.load(_spec(tmp_path, ["{conv: 64, kernel: 3, pad: 1, name: c}"], "56x56x64")))
    (r,) = rep.rows
    assert r.winograd == 1_671_168
    assert r.im2col == 3 * 3 * 64 * 56 * 56 == 1_806_336
    assert r.direct == 0
    # FFT at 58x58 padded → 60x60 (5-smooth), 60x31 complex per plane; 64 + 64*64 + 64 planes
    assert fast_len(58) == 60
    assert r.fft_complex == (64 + 64 * 64 + 64) * 60 * 31
    assert r.fft == 2 * r.fft_complex + 64 * 60 * 60
    # odd outputs round the tiles up: 7x7 → 4*4 = 16 tiles per image, batch 2
    rep = workspace(cnncalc.load(_spec(tmp_path, ["{conv: 8, kernel: 3, pad: 1, name: c}"], "7x7x4")), batch=2)
    assert rep.rows[0].winograd == 16 * 4 * 16 * 2 + 16 * 8 * 4 + 16 * 8 * 16 * 2
    # stride 2 or 5x5: no F(2x2, 3x3)
    rep = workspace(cnncalc.load(_spec(tmp_path, ["{conv: 8, kernel: 3, stride: 2, pad: 1, name: a}",
                                                  "{conv: 8, kernel: 5, pad: 2, name: b}"], "17x17x8")))
    assert [r.winograd for r in rep.rows] == [None, None]


np = pytest.importorskip("numpy")


def _run_conv(tmp_path, conv, input_, batch, algo):
    """The analysis row and the runtime's cache for one conv, run by the runtime's executor
    (its own padding, variant and, with ``auto``, algorithm) in a training forward pass."""
    from cnncalc.runtime.executor import Net, random_input

    graph = cnncalc.load(_spec(tmp_path, [conv + ", name: c}"], input_))
    (r,) = workspace(graph, batch=batch).rows
    net = Net(graph, dtype="float32", conv_algo=algo)
    x = random_input(graph.input_shape, batch, np.random.default_rng(0), "float32")
    y = net.forward(x, train=True)["c"]
    assert y.shape[2:] == graph["c"].layer.out_shape[:2]
    return r, _conv_cache(net.caches["c"])


def _conv_cache(c):
    """The kernel's ConvCache inside the executor's cache for a node (a tuple with the
    activation's part)."""
    if hasattr(c, "algo") and hasattr(c, "cols"):
        return c
    for part in c if isinstance(c, (tuple, list)) else ():
        found = _conv_cache(part)
        if found is not None:
            return found
    return None


@pytest.mark.parametrize("conv,input_,batch", [
    ("{conv: 6, kernel: 3, pad: 1", "7x6x4", 2),                    # im2col columns
    ("{conv: 8, kernel: 3, stride: 2, pad: 1, groups: 2", "11x9x8", 3),  # grouped, strided
    ("{conv: 6, kernel: 3, dilation: 2", "11x11x3", 1),             # dilated
    ("{conv: 4, kernel: 3, stride: 2, rounding: ceil", "10x8x3", 1),  # ceil: extra high padding
])
def test_im2col_columns_are_the_runtimes(tmp_path, conv, input_, batch):
    r, cache = _run_conv(tmp_path, conv, input_, batch, "im2col")
    assert cache.cols is not None
    assert cache.cols.size == r.im2col  # K*K*C_in x H_out*W_out per image, as allocated
    assert cache.cols.nbytes == r.im2col * 4
    if r.runtime_algo == "im2col":  # the grouped one runs the depthwise kernel by default
        assert r.runtime == r.im2col + r.padded


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("conv,input_,batch,tile", [
    ("{conv: 6, kernel: 3, pad: 1", "12x10x4", 2, 2),               # 120 positions, small weights
    ("{conv: 6, kernel: 3, dilation: 2", "13x13x3", 3, 3),          # 9x9, dilated
    ("{conv: 8, kernel: 3, pad: 1", "32x32x16", 3, 1),              # 144*1024*4 B > 512 KiB: one image (8 filters: not Winograd)
    ("{conv: 8, kernel: 3, stride: 2, pad: 1", "39x35x8", 2, 2),    # strided, 20x18
])
def test_im2col_tiles_are_the_runtimes(tmp_path, monkeypatch, conv, input_, batch, tile, keep):
    """Planes of 16x16 and more (8x8 with small weights) unfold a tile of images at a time: the
    workspace is the tile's padded copy and the tile's columns, or the batch's when they are at
    most TILE_KEEP_BYTES (kept for the weight gradient; ``keep=False``: the cap set to 0 on both
    sides), recorded as the runtime's forward unfolds them."""
    from cnncalc.analysis import workspace as wsmod
    from cnncalc.runtime.kernels import conv as kconv

    assert wsmod.TILE_KEEP_BYTES == kconv.TILE_KEEP_BYTES  # the analysis restates the runtime's cap
    if not keep:
        monkeypatch.setattr(wsmod, "TILE_KEEP_BYTES", 0)
        monkeypatch.setattr(kconv, "TILE_KEEP_BYTES", 0)
    seen, padded = [], []
    unfold = kconv._unfold_imgs

    def rec(*args):
        seen.append(args[-1].shape)
        padded.append(args[2].shape)
        return unfold(*args)

    monkeypatch.setattr(kconv, "_unfold_imgs", rec)
    r, cache = _run_conv(tmp_path, conv, input_, batch, "im2col")
    g = r.geometry
    K, P = g["C_in"] * 9, g["H_out"] * g["W_out"]
    assert max(seen) == (tile, K, P)
    tpad = tile * g["C_in"] * g["H_pad"] * g["W_pad"] if r.padded else 0
    assert not tpad or max(padded) == (tile, g["C_in"], g["H_pad"], g["W_pad"])  # the tile's padded buffer
    if keep:
        assert cache.cols.shape == (batch, K, P)
        assert r.runtime == batch * K * P + tpad and "kept for the weight gradient" in r.runtime_detail
    else:
        assert cache.cols is None
        assert r.runtime == tile * K * P + tpad and "kept" not in r.runtime_detail


@pytest.mark.parametrize("conv,input_,batch,cap", [
    ("{conv: 16, kernel: 3, pad: 1", "16x16x16", 2, None),     # 4x4 tiles of F(4x4), one chunk, V kept
    ("{conv: 64, kernel: 3, pad: 1", "32x32x32", 9, None),     # V and M of one image near 1 MiB: nine chunks
    ("{conv: 64, kernel: 3, pad: 1", "32x32x32", 9, 1 << 20),  # the batch's V over the cap: made again in backward
    ("{conv: 24, kernel: 3", "19x17x16", 3, None),             # no padding, outputs 17x15: partial tiles
])
def test_winograd_buffers_are_the_runtimes(tmp_path, monkeypatch, conv, input_, batch, cap):
    """The runtime column of a conv the runtime runs by Winograd F(4x4, 3x3), against what its
    training forward allocates (recorded as the runtime's executor runs it): the padded chunk,
    the transformed input V (the whole batch's, kept for the weight gradient, when it fits the
    keep cap) and products M, plus the transformed filters U (36*K*C); the output excluded."""
    from cnncalc.analysis import workspace as wsmod
    from cnncalc.runtime.executor import Net, random_input
    from cnncalc.runtime.kernels import conv as kconv
    from cnncalc.runtime.kernels import winograd as wmod

    if cap is not None:
        monkeypatch.setattr(wsmod, "KEEP_BYTES", cap)
        monkeypatch.setattr(kconv, "KEEP_COLS_BYTES", cap)
    graph = cnncalc.load(_spec(tmp_path, [conv + ", name: c}"], input_))
    (r,) = workspace(graph, batch=batch).rows
    assert r.runtime_algo == "winograd"
    net = Net(graph, dtype="float32", conv_algo="auto")
    x = random_input(graph.input_shape, batch, np.random.default_rng(0), "float32")
    net.forward(x, train=True)  # compiled before numpy is wrapped
    sizes = []

    class Recording:  # numpy, with the Winograd module's zeros/empty recorded
        def __getattr__(self, name):
            return getattr(np, name)

        def zeros(self, shape, dtype=float):
            sizes.append(int(np.prod(shape)))
            return np.zeros(shape, dtype)

        def empty(self, shape, dtype=float):
            sizes.append(int(np.prod(shape)))
            return np.empty(shape, dtype)

    monkeypatch.setattr(wmod, "np", Recording())
    y = net.forward(x, train=True)["c"]
    K, C = y.shape[1], x.shape[1]
    assert sizes[0] == y.size  # the output: not workspace
    assert sum(sizes[1:]) + 36 * K * C == r.runtime
    kept = cap is None
    tiles = -(-y.shape[2] // 4) * -(-y.shape[3] // 4)
    assert (36 * C * batch * tiles in sizes[1:]) == kept  # the batch's V, or a chunk's
    assert ("kept for the weight gradient" in r.runtime_detail) == kept


@pytest.mark.parametrize("conv,input_,variant", [
    ("{conv: 6, kernel: 1, stride: 2", "9x9x4", "strided 1x1"),
    ("{conv: 6, kernel: 5, pad: 2", "12x12x16", "row unfold"),
])
def test_runtime_variants_match_their_buffers(tmp_path, conv, input_, variant):
    r, cache = _run_conv(tmp_path, conv, input_, 2, "auto")
    assert r.runtime_algo == cache.algo == "im2col"
    if variant == "strided 1x1":
        assert r.runtime == cache.cols.size == 2 * 4 * 5 * 5
    else:  # the row unfold is kept; the GEMM rows and the padded copy are the rest of the workspace
        g = r.geometry
        assert cache.cols.size == 2 * 16 * 5 * g["H_out"] * g["W_pad"]
        assert r.runtime == cache.cols.size + 2 * 6 * 5 * g["H_out"] * g["W_pad"] + r.padded


@pytest.mark.parametrize("conv,input_,batch", [
    ("{conv: 5, kernel: 3, pad: 1", "14x11x3", 2),
    ("{conv: 4, kernel: 9, pad: 4, groups: 2", "20x17x6", 1),
    ("{conv: 4, kernel: 3, stride: 2, rounding: ceil", "10x8x3", 2),  # the runtime pads 11x9: 12x9 FFTs
])
def test_fft_buffers_are_the_runtimes(tmp_path, monkeypatch, conv, input_, batch):
    """The spectra the runtime's FFT path gets from numpy.fft (recorded as it runs): input
    and filter spectra from rfft2, the product spectra into irfft2, its real output."""
    seen = {"rfft2": [], "irfft2_in": [], "irfft2_out": []}
    rfft2, irfft2 = np.fft.rfft2, np.fft.irfft2

    def rec_rfft2(a, *args, **kw):
        out = rfft2(a, *args, **kw)
        seen["rfft2"].append(out)
        return out

    def rec_irfft2(a, *args, **kw):
        out = irfft2(a, *args, **kw)
        seen["irfft2_in"].append(a)
        seen["irfft2_out"].append(out)
        return out

    monkeypatch.setattr(np.fft, "rfft2", rec_rfft2)
    monkeypatch.setattr(np.fft, "irfft2", rec_irfft2)
    r, cache = _run_conv(tmp_path, conv, input_, batch, "fft")
    assert cache.algo == "fft"
    complex_ = sum(a.size for a in seen["rfft2"]) + sum(a.size for a in seen["irfft2_in"])
    assert complex_ == r.fft_complex
    assert sum(a.size for a in seen["irfft2_out"]) == r.fft_real
    assert all(a.dtype == np.complex64 for a in seen["rfft2"])  # 2 float32 reals per value
    assert sum(a.nbytes for a in seen["rfft2"] + seen["irfft2_in"] + seen["irfft2_out"]) == r.fft * 4


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "lenet5", "alexnet", "resnext50_32x4d",
                                  "kim-cnn"])
def test_runtime_choice_is_choose_algo(name):
    from cnncalc.runtime.kernels.conv import choose_algo

    graph = cnncalc.load(name)
    rep = workspace(graph)
    assert rep.rows
    for r in rep.rows:
        layer = graph[r.name].layer
        g = r.geometry
        want = choose_algo((1, g["C_in"], g["H"], g["W"]), (g["C_out"], g["C_in"] // g["groups"], *g["kernel"]),
                           tuple(g["stride"]), tuple(g["dilation"]), layer.groups)
        assert r.runtime_algo == want, r.name


def _run(*args):
    return CliRunner().invoke(main, ["summarize", *args])


def test_cli_workspace_formats():
    r = _run("resnet18", "--workspace")
    assert r.exit_code == 0, r.output
    assert "1,671,168" in r.output and "Lavin & Gray" in r.output
    assert "at conv4_x/block1/conv2" in r.output  # the runtime peak: Winograd's 36*256*256 transformed filters
    obj = json.loads(_run("resnet18", "--workspace", "--format", "json", "--batch", "2").output)
    conv = next(x for x in obj["layers"] if x["name"] == "conv2_x/block1/conv1")
    assert conv["im2col"] == 2 * 1_806_336 and conv["bytes"]["im2col"] == 8 * 1_806_336
    assert obj["peak"]["winograd"]["layer"] == "conv5_x/block1/conv2"
    rows = list(csv.DictReader(io.StringIO(_run("resnet18", "--workspace", "--format", "csv").output)))
    assert rows[0]["name"] == "conv1" and rows[0]["runtime_algo"] == "im2col"
    assert rows[0]["winograd"] == ""  # 7x7/s2: not applicable
    md = _run("resnet18", "--workspace", "--format", "markdown", "--explain").output
    assert "| conv1 |" in md and "Winograd F(2x2,3x3): tiles ceil(56/2)*ceil(56/2) = 784" in md


def test_cli_workspace_and_symbolic_are_separate():
    r = _run("resnet18", "--workspace", "--symbolic")
    assert r.exit_code == 2 and "one at a time" in r.output


def test_the_runtime_column_is_a_training_steps_sub_batch():
    """A training step runs a batch over SUB_BATCH samples as sub-batches (Net.loss) unless a
    layer couples the samples: LeNet-5 at batch 64 calls each conv with 32 images, so its runtime
    column is batch 32's (C1's kept columns 32*25*784), the textbook columns batch 64's; a
    batch-normalised net runs whole batches."""
    from cnncalc.analysis.workspace import SUB_BATCH
    from cnncalc.runtime.executor import Net

    g = cnncalc.load("lenet5")
    at64 = {r.name: r for r in workspace(g, batch=64).rows}
    at32 = {r.name: r for r in workspace(g, batch=32).rows}
    assert SUB_BATCH == Net.sub_batch == 32 and Net(g).sub_batched(64)
    for name, r in at64.items():
        assert r.runtime == at32[name].runtime and r.runtime_algo == at32[name].runtime_algo
        assert r.im2col == 2 * at32[name].im2col
        assert r.runtime_detail.startswith("per sub-batch of 32 (a training step runs a batch of 64")
        assert any(line.startswith("runtime: ") and "sub-batch" in line for line in r.explain)
    assert at64["C1"].runtime == 32 * 25 * 28 * 28  # the sub-batch's columns, kept (1x32x32 input: no padding)
    g = cnncalc.load("cifar_resnet20")
    assert not Net(g).sub_batched(64)
    rows = {r.name: r for r in workspace(g, batch=64).rows}
    assert not any("sub-batch" in r.runtime_detail for r in rows.values())
    assert rows["conv1"].runtime != {r.name: r for r in workspace(g, batch=32).rows}["conv1"].runtime
