"""Optimizers registered into mmengine's ``OPTIMIZERS`` (usable from every OpenMMLab scope)."""
from .tf_rmsprop import TFRMSprop

__all__ = ['TFRMSprop']
