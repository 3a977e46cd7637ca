"""The layer registry: spec keyword → Layer class. Each layer type's rules live in one module."""
from cnncalc.layers.activation import (ELU, GELU, SELU, Hardsigmoid, Hardswish, LeakyReLU, Maxout,
                                       Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU, Softplus, Tanh)
from cnncalc.layers.attention import (MLP, Attention, ClsToken, PatchEmbed, PatchMerging, PosEmbed,
                                      TokenMean, ToImage, Tokens)
from cnncalc.layers.base import GLOBAL, AxisMap, Layer, Window
from cnncalc.layers.channels import ChannelShuffle, PadChannels, Split
from cnncalc.layers.conv import Conv, ConvTranspose, DepthwiseConv, LocallyConnected
from cnncalc.layers.dense import Dense, Flatten
from cnncalc.layers.merge import Add, Concat, Identity, Mul
from cnncalc.layers.norm import LRN, BatchNorm, Dropout, GroupNorm, InstanceNorm, LayerNorm, Scale
from cnncalc.layers.opaque import Opaque
from cnncalc.layers.pool import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool
from cnncalc.layers.resample import AdaptiveAvgPool, AdaptiveMaxPool, Crop, Pad, Upsample
from cnncalc.layers.tensor import (Binary, Expand, Gather, LogSoftmax, MatMul, Reduce, RelBias, Reshape, Slice,
                                   Softmax, Stack, Tile, Transpose, Unary, Where)

_ALL = [Conv, DepthwiseConv, ConvTranspose, LocallyConnected, Dense, Flatten, MaxPool, AvgPool,
        GlobalMaxPool, GlobalAvgPool, ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, Softmax, Maxout,
        BatchNorm, LRN, Dropout, Concat, Add, Identity, PadChannels, ChannelShuffle, Split,
        SiLU, Hardswish, Hardsigmoid, GELU, Mish, ELU, SELU, Softplus, PReLU, Mul, Scale,
        LayerNorm, GroupNorm, InstanceNorm, Upsample, Crop, Pad, AdaptiveAvgPool, AdaptiveMaxPool,
        Opaque,
        # the low-level tensor vocabulary (docs/tensors.md)
        MatMul, Reshape, Transpose, Slice, Gather, Expand, Tile, Stack, Binary, Unary, Where, Reduce,
        LogSoftmax, RelBias,
        # token layers (docs/attention.md)
        PatchEmbed, Tokens, ToImage, ClsToken, PosEmbed, Attention, MLP, PatchMerging, TokenMean]

REGISTRY: dict[str, type[Layer]] = {cls.kind: cls for cls in _ALL}
# Other names people write for the same layers.
ALIASES = {
    "conv2d": "conv", "conv1d": "conv", "convolution": "conv", "depthwise": "dwconv",
    "convtranspose": "deconv", "conv_transpose": "deconv", "transposed_conv": "deconv",
    "locally_connected": "local", "dense": "fc", "linear": "fc", "pool": "maxpool",
    "max_pool": "maxpool", "avg_pool": "avgpool", "gap": "global_avgpool",
    "global_avg_pool": "global_avgpool", "global_max_pool": "global_maxpool",
    "leaky_relu": "leakyrelu", "bn": "batchnorm", "batch_norm": "batchnorm", "merge": "concat",
    "residual": "add", "sum": "add", "zeropad_channels": "pad_channels", "shuffle": "channel_shuffle",
    "swish": "silu", "hard_swish": "hardswish", "hard_sigmoid": "hardsigmoid", "multiply": "mul",
    "layer_norm": "layernorm", "ln": "layernorm", "group_norm": "groupnorm", "gn": "groupnorm",
    "instance_norm": "instancenorm", "layer_scale": "scale", "interpolate": "upsample",
    "adaptive_avg_pool": "adaptive_avgpool", "adaptive_max_pool": "adaptive_maxpool",
    "permute": "transpose", "log_softmax": "logsoftmax",
    "rel_bias": "relbias", "relative_position_bias": "relbias",
    "patch_embedding": "patch_embed", "class_token": "cls_token", "position_embedding": "pos_embed",
    "pos_embedding": "pos_embed", "self_attention": "attention", "msa": "attention", "mhsa": "attention",
    "window_attention": "attention", "patchify": "patch_embed", "merge_patches": "patch_merging",
}

__all__ = ["REGISTRY", "ALIASES", "GLOBAL", "AxisMap", "Layer", "Window"] + [c.__name__ for c in _ALL]
