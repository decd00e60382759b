"""Distillation losses (registered in the root ``mmengine.registry.MODELS``).

Every loss derives from :class:`~.base.BaseDistillLoss` (the written contract:
``forward(student, teacher, **extra) -> scalar`` already multiplied by ``loss_weight``;
``extra_inputs`` names the keyword inputs a loss needs; ``setup(distiller)`` hook); adversarial
losses derive from :class:`~.base.AdversarialDistillLoss` (own ``discriminator`` and
``discriminator_loss``). See :mod:`rtkd.distill.losses.base`.
"""
from .attention_transfer_loss import AttentionTransferLoss
from .base import AdversarialDistillLoss, BaseDistillLoss, check_loss_weight
from .bpkd_loss import BPKDLoss
from .channel_wise_kd import ChannelWiseKD
from .cirkd_loss import CIRKDLoss
from .dist_loss import DISTLoss
from .dkd_loss import DKDLoss
from .fgfi_loss import FGFILoss
from .fitnets_loss import FitNetsLoss
from .hinton_kd import HintonKD
from .holistic_kd import HolisticKD, ScoreMapCritic
from .ka_loss import KAAdaptationLoss, KAAffinityLoss, KAReconstructionLoss
from .nfd_loss import NFDLoss
from .ofd_loss import OFDLoss, margin_from_bn
from .pair_wise_kd import PairWiseKD
from .pixel_wise_kd import PixelWiseKD
from .pkd_loss import PKDLoss

__all__ = [
    'AttentionTransferLoss', 'ChannelWiseKD', 'FGFILoss', 'FitNetsLoss', 'HintonKD', 'HolisticKD',
    'KAAdaptationLoss', 'KAAffinityLoss', 'KAReconstructionLoss', 'NFDLoss', 'OFDLoss',
    'PairWiseKD', 'PixelWiseKD', 'ScoreMapCritic', 'margin_from_bn'
]
__all__ += ['AdversarialDistillLoss', 'BaseDistillLoss', 'check_loss_weight']
__all__ += ['BPKDLoss', 'CIRKDLoss']
__all__ += ['DISTLoss', 'DKDLoss', 'PKDLoss']
