"""Knowledge adaptation (He et al., CVPR 2019) as a two-stage recipe.

Stage 1 (:class:`KATeacherAutoEncoder`, a model of its own): an auto-encoder learns to
reconstruct the frozen teacher's feature; its checkpoint holds the auto-encoder and the tap it
was trained on. Stage 2 (the :class:`~rtkd.distill.Distiller`): :class:`KAEncoderConnector`
(frozen encoder on the teacher tap), :class:`KAAdapter` (student adapters),
``KAAdaptationLoss`` + ``KAAffinityLoss`` (:mod:`rtkd.distill.losses.ka_loss`). Recipes:
``configs/distill/seg/ka/``.
"""
from .autoencoder import KAAutoEncoder
from .connectors import KAAdapter, KAEncoderConnector, read_stage1_checkpoint, tapped_channels
from .stage1 import KATeacherAutoEncoder

__all__ = [
    'KAAutoEncoder', 'KAAdapter', 'KAEncoderConnector', 'read_stage1_checkpoint', 'tapped_channels',
    'KATeacherAutoEncoder'
]
