"""rtkd backbones (registered into mmseg MODELS on import)."""
from .contextnet import RTContextNet  # noqa: F401
from .espnet import RTESPNet  # noqa: F401
from .fanet import RTFANet  # noqa: F401
from .fast_scnn import RTFastSCNN  # noqa: F401
from .linknet import RTResNet  # noqa: F401
