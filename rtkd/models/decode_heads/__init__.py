"""rtkd decode_heads (registered into mmseg MODELS on import)."""
from .espnet_head import RTESPNetHead  # noqa: F401
from .fanet_head import RTFANetHead  # noqa: F401
from .fast_scnn_head import RTFastSCNNHead  # noqa: F401
from .linknet_head import RTLinkNetHead  # noqa: F401
