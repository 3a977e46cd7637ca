"""numba/numpy compute kernels of the reference runtime, one module per family.

=============  ==============================================================
``conv``       conv2d / conv1d (direct, im2col, fft, auto), transposed conv,
               locally-connected (untied) conv
``depthwise``  depthwise / thin grouped conv2d (what ``auto`` picks for them)
``pool``       max / avg pooling (2-D, 1-D, global)
``activation`` relu, relu6, leaky_relu, tanh, sigmoid, softmax, maxout, dropout
``norm``       batchnorm (NCHW and (N, C)), local response norm
``dense``      fully connected
``loss``       softmax + cross-entropy
=============  ==============================================================

Conventions: NCHW activations, dtype follows the input (float32 default,
float64 kept), every layer has ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> (dx, *dparams)``.  Padding is per axis
``((top, bottom), (left, right))``.
"""
