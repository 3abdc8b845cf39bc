"""What gradlint knows about torch.nn: layer categories, activations, initializers.

Everything the builder and the rules need to know about PyTorch itself lives here,
keyed by fully qualified names (``torch.nn.Linear``), so that aliases resolve once.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradlint.vocab import Category

# ---------------------------------------------------------------- layer kinds
WEIGHTED = frozenset(
    {
        "Linear",
        "Bilinear",
        "LazyLinear",
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "LazyConv1d",
        "LazyConv2d",
        "LazyConv3d",
        "ConvTranspose1d",
        "ConvTranspose2d",
        "ConvTranspose3d",
        "LazyConvTranspose1d",
        "LazyConvTranspose2d",
        "LazyConvTranspose3d",
        "Embedding",
        "EmbeddingBag",
        "MultiheadAttention",
    }
)
RECURRENT = frozenset({"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"})
#: normalizations over the batch (the BatchNorm family)
BATCH_NORMS = frozenset(
    {
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "LazyBatchNorm1d",
        "LazyBatchNorm2d",
        "LazyBatchNorm3d",
        "SyncBatchNorm",
    }
)
#: normalizations over each sample's positions, channel by channel
INSTANCE_NORMS = frozenset({"InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"})
NORM = BATCH_NORMS | INSTANCE_NORMS | {"LayerNorm", "GroupNorm", "LocalResponseNorm", "RMSNorm"}

#: layers that only move, select or drop values
SHAPE_ONLY = (
    "Flatten",
    "Unflatten",
    "Identity",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "ZeroPad1d",
    "ZeroPad2d",
    "ZeroPad3d",
    "ConstantPad1d",
    "ConstantPad2d",
    "ConstantPad3d",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "ChannelShuffle",
    "PixelShuffle",
    "PixelUnshuffle",
)
#: pooling and resampling layers
POOLS = (
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "Upsample",
    "UpsamplingNearest2d",
)
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"})

#: activation module class -> canonical activation name
ACTIVATION_MODULES = {
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Hardsigmoid": "hardsigmoid",
    "Hardtanh": "hardtanh",
    "Softsign": "softsign",
    "ReLU": "relu",
    "ReLU6": "relu6",
    "LeakyReLU": "leaky_relu",
    "PReLU": "prelu",
    "RReLU": "rrelu",
    "ELU": "elu",
    "SELU": "selu",
    "CELU": "celu",
    "GELU": "gelu",
    "SiLU": "silu",
    "Mish": "mish",
    "Hardswish": "hardswish",
    "Softplus": "softplus",
    "Tanhshrink": "tanhshrink",
    "LogSigmoid": "logsigmoid",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
    "Softmin": "softmin",
    "GLU": "glu",
    "Threshold": "threshold",
}

#: functional spellings (fully qualified) -> canonical activation name
ACTIVATION_FUNCTIONS = {
    **{
        f"torch.nn.functional.{n}": n
        for n in (
            "sigmoid",
            "tanh",
            "relu",
            "relu6",
            "gelu",
            "silu",
            "elu",
            "selu",
            "celu",
            "mish",
            "hardsigmoid",
            "hardtanh",
            "hardswish",
            "softsign",
            "softplus",
            "logsigmoid",
            "softmax",
            "log_softmax",
            "glu",
            "tanhshrink",
            "leaky_relu",
            "prelu",
            "rrelu",
            "threshold",
            "softmin",
        )
    },
    "torch.nn.functional.relu_": "relu",
    "torch.nn.functional.elu_": "elu",
    "torch.nn.functional.leaky_relu_": "leaky_relu",
    "torch.nn.functional.hardtanh_": "hardtanh",
    "torch.sigmoid": "sigmoid",
    "torch.tanh": "tanh",
    "torch.relu": "relu",
    "torch.relu_": "relu",
    "torch.sigmoid_": "sigmoid",
    "torch.tanh_": "tanh",
    "torch.selu": "selu",
    "torch.celu": "celu",
    "torch.softmax": "softmax",
    "torch.log_softmax": "log_softmax",
    "torch.special.expit": "sigmoid",
    # unbounded ones that overflow when stacked
    "torch.exp": "exp",
    "torch.square": "square",
    "torch.special.exp2": "exp",
}

#: tensor methods that apply an activation: ``x.sigmoid()``
ACTIVATION_METHODS = {
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
    "tanh": "tanh",
    "tanh_": "tanh",
    "relu": "relu",
    "relu_": "relu",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
    "exp": "exp",
    "exp_": "exp",
    "square": "square",
}

FUNCTIONAL_NORMS = frozenset(
    f"torch.nn.functional.{n}" for n in ("layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm")
)
FUNCTIONAL_WEIGHTED = frozenset(
    {
        "torch.nn.functional.linear",
        "torch.nn.functional.conv1d",
        "torch.nn.functional.conv2d",
        "torch.nn.functional.conv3d",
        "torch.nn.functional.bilinear",
        "torch.matmul",
        "torch.mm",
        "torch.bmm",
        "torch.einsum",
        "torch.addmm",
    }
)
MERGE_FUNCTIONS = {
    "torch.cat": "cat",
    "torch.concat": "cat",
    "torch.concatenate": "cat",
    "torch.stack": "cat",
    "torch.add": "add",
    "torch.sum": None,
    "torch.mul": "mul",
    "torch.multiply": "mul",
}


@dataclass(frozen=True)
class ActivationInfo:
    name: str
    #: upper bound of |f'(x)|
    max_derivative: float
    #: bounded output, so large pre-activations saturate (derivative -> 0)
    saturating: bool


ACTIVATIONS = {
    "sigmoid": ActivationInfo("sigmoid", 0.25, True),
    "tanh": ActivationInfo("tanh", 1.0, True),
    "hardsigmoid": ActivationInfo("hardsigmoid", 1 / 6, True),
    "hardtanh": ActivationInfo("hardtanh", 1.0, True),
    "softsign": ActivationInfo("softsign", 1.0, True),
}


def activation_info(name: str | None) -> ActivationInfo | None:
    return ACTIVATIONS.get(name or "")


def layer_category(kind: str) -> str:
    if kind in WEIGHTED:
        return Category.WEIGHTED
    if kind in RECURRENT:
        return Category.RECURRENT
    if kind in NORM:
        return Category.NORM
    if kind in ACTIVATION_MODULES:
        return Category.ACTIVATION
    if kind in CONTAINERS:
        return "container"
    return Category.OTHER


# ---------------------------------------------------------------- initializers
#: nn.init function (without the trailing underscore) -> scheme
INIT_FUNCTIONS = {
    "xavier_uniform": "xavier_uniform",
    "xavier_normal": "xavier_normal",
    "kaiming_uniform": "kaiming_uniform",
    "kaiming_normal": "kaiming_normal",
    "orthogonal": "orthogonal",
    "normal": "normal",
    "uniform": "uniform",
    "trunc_normal": "trunc_normal",
    "constant": "constant",
    "ones": "ones",
    "zeros": "zeros",
    "eye": "eye",
    "dirac": "dirac",
    "sparse": "sparse",
}
#: in-place tensor methods that (re)initialize: ``w.data.normal_(0, 1)``
INIT_METHODS = {
    "normal_": "normal",
    "uniform_": "uniform",
    "fill_": "constant",
    "zero_": "zeros",
    "copy_": "copy",
}
#: tensor factories used inside ``nn.Parameter(...)``
TENSOR_FACTORIES = {
    "torch.randn": "normal",
    "torch.rand": "uniform",
    "torch.zeros": "zeros",
    "torch.ones": "ones",
    "torch.full": "constant",
    "torch.empty": "uninitialized",
    "torch.eye": "eye",
    "torch.tensor": "copy",
    "torch.Tensor": "uninitialized",
    "torch.FloatTensor": "uninitialized",
}
CONSTANT_SCHEMES = frozenset({"constant", "zeros", "ones"})


def calculate_gain(nonlinearity: str, param=None):
    """``torch.nn.init.calculate_gain``: the recommended gain for an activation (None when
    unknown)."""
    if nonlinearity in (
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "sigmoid",
    ):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return 2.0**0.5
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if not isinstance(slope, (int, float)) or isinstance(slope, bool):
            return None
        return (2.0 / (1 + slope * slope)) ** 0.5
    if nonlinearity == "selu":
        return 3.0 / 4
    return None


#: functional ops that do a shape-only module's work: qualified name -> (module kind, the
#: names of its positional arguments after the input)
FUNCTIONAL_SHAPE = {
    **{f"torch.nn.functional.max_pool{d}d": (f"MaxPool{d}d", ("kernel_size", "stride", "padding")) for d in (1, 2, 3)},
    **{f"torch.nn.functional.avg_pool{d}d": (f"AvgPool{d}d", ("kernel_size", "stride", "padding")) for d in (1, 2, 3)},
    **{f"torch.nn.functional.adaptive_avg_pool{d}d": (f"AdaptiveAvgPool{d}d", ("output_size",)) for d in (1, 2, 3)},
    **{f"torch.nn.functional.adaptive_max_pool{d}d": (f"AdaptiveMaxPool{d}d", ("output_size",)) for d in (1, 2, 3)},
    "torch.flatten": ("Flatten", ("start_dim",)),
    "torch.nn.functional.dropout": ("Dropout", ("p",)),
    "torch.nn.functional.dropout2d": ("Dropout2d", ("p",)),
}


#: the constructor arguments that are sizes (widths, channels, counts): positive integers
SIZE_PARAMS = frozenset(
    {
        "in_features",
        "out_features",
        "in1_features",
        "in2_features",
        "in_channels",
        "out_channels",
        "num_features",
        "num_channels",
        "num_groups",
        "input_size",
        "hidden_size",
        "num_layers",
        "embed_dim",
        "num_heads",
        "num_embeddings",
        "embedding_dim",
        "normalized_shape",
    }
)
#: the largest size taken as given (2 ** 40 elements of one dimension is already unallocatable)
MAX_SIZE = 2**40
#: the largest count taken as given (layers of one recurrent module, heads, groups)
MAX_COUNT = 10_000
COUNT_PARAMS = frozenset({"num_layers", "num_heads", "num_groups"})
