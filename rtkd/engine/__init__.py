"""Runner-level guards (hooks) and optimizers registered into mmengine's registries."""
from .hooks import NonFiniteLossHook
from .optimizers import TFRMSprop

__all__ = ['NonFiniteLossHook', 'TFRMSprop']
