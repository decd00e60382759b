"""rtkd task losses (registered into mmseg MODELS on import)."""
from .ohem_cross_entropy_loss import OhemCrossEntropyLoss  # noqa: F401
