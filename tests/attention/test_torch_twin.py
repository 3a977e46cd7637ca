"""A second, independent count: the same networks built in PyTorch, their matmul-type MACs counted
at the dispatcher (every aten mm / addmm / bmm / baddbmm / conv as it runs, scaled_dot_product_attention
forced onto its unfused math path: what forward hooks on an unfused implementation see, and what
FlopCounterMode misses on CPU), parameters as sum(p.numel())."""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from cnncalc.analysis.report import analyze_graph  # noqa: E402
from cnncalc.spec.loader import load_spec, load_spec_text  # noqa: E402
from tests.interop.zoocheck import dispatch_macs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def count(model, x):
    return dispatch_macs(model, x)


class IssueBlock(nn.Module):
    """The issue's block: nn.TransformerEncoderLayer(64, 4, 128) on 16 tokens, q/k/v Linears, one
    scaled_dot_product_attention, one matmul(a, aᵀ), a Linear head on the tokens' mean."""

    def __init__(self):
        super().__init__()
        self.enc = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
        self.q, self.k, self.v = nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = self.enc(x)
        a = nn.functional.scaled_dot_product_attention(self.q(x), self.k(x), self.v(x))
        g = torch.matmul(a, a.transpose(-1, -2))
        return g, self.head(a.mean(1))


def test_issue_block_803456():
    model = IssueBlock().train()  # (the training path: nn.MultiheadAttention, not the fused fast path)
    macs = count(model, torch.randn(1, 16, 64))
    r = analyze_graph(load_spec(ROOT / "examples/attention/issue_block.yaml"))
    assert macs == r.totals["macs"] == 803_456
    assert sum(p.numel() for p in model.parameters()) == r.totals["params"]


def test_swin_window_attention_and_merging_against_timm():
    timm = pytest.importorskip("timm")
    from timm.models.swin_transformer import PatchMerging, SwinTransformerBlock
    blk = SwinTransformerBlock(dim=32, input_resolution=(8, 8), num_heads=2, window_size=4, shift_size=2,
                               mlp_ratio=4.0).eval()
    merge = PatchMerging(dim=32).eval()
    model = nn.Sequential(blk, merge)
    macs = count(model, torch.randn(1, 8, 8, 32))  # (timm's Swin blocks read B, H, W, C)
    r = analyze_graph(load_spec_text("""
name: swin block
input: 8x8x32
layers:
  - {tokens: }
  - add:
      - - {layernorm: }
        - {attention: 2, window: 4, shift: 2}
      - []
  - add:
      - - {layernorm: }
        - {mlp: 128}
      - []
  - {patch_merging: }
"""))
    assert macs == r.totals["macs"]
    assert sum(p.numel() for p in model.parameters()) == r.totals["params"]
    assert timm.__version__
