"""Modules of the SP-KD add-on (imported by its configs through ``custom_imports``)."""
from .sp_loss import SPLoss, similarity_matrix

__all__ = ['SPLoss', 'similarity_matrix']
