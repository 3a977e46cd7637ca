"""The layer registry: spec keyword → Layer class. Each layer type's rules live in one module."""
from cnncalc.layers.activation import LeakyReLU, Maxout, ReLU, ReLU6, Sigmoid, Softmax, Tanh
from cnncalc.layers.base import GLOBAL, Layer, Window
from cnncalc.layers.channels import ChannelShuffle, PadChannels, Split
from cnncalc.layers.conv import Conv, ConvTranspose, DepthwiseConv, LocallyConnected
from cnncalc.layers.dense import Dense, Flatten
from cnncalc.layers.merge import Add, Concat, Identity
from cnncalc.layers.norm import LRN, BatchNorm, Dropout
from cnncalc.layers.opaque import Opaque
from cnncalc.layers.pool import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool

_ALL = [Conv, DepthwiseConv, ConvTranspose, LocallyConnected, Dense, Flatten, MaxPool, AvgPool,
        GlobalMaxPool, GlobalAvgPool, ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, Softmax, Maxout,
        BatchNorm, LRN, Dropout, Concat, Add, Identity, PadChannels, ChannelShuffle, Split, Opaque]

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
}

__all__ = ["REGISTRY", "ALIASES", "GLOBAL", "Layer", "Window"] + [c.__name__ for c in _ALL]
