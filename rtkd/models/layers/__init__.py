"""rtkd layers (registered into mmseg MODELS on import)."""
from .asymmetric_conv import AsymmetricConv  # noqa: F401
from .depthwise_separable import DSConv  # noqa: F401
from .dilated_conv import DilatedConv  # noqa: F401
from .esp_module import ESPModule  # noqa: F401
from .fast_attention import FastAttention  # noqa: F401
from .feature_fusion import FeatureFusion  # noqa: F401
from .inverted_residual import InvertedResidual, make_bottleneck_stage  # noqa: F401
from .pyramid_pooling import PyramidPooling  # noqa: F401
