"""Distillation losses (registered in the root ``mmengine.registry.MODELS``).

Interface (shared with the distiller): ``forward(student, teacher, **extra) -> scalar`` already
multiplied by ``loss_weight``; ``extra_inputs`` names the keyword inputs a loss needs; optional
``setup(distiller)`` hook; adversarial losses own ``discriminator`` and ``discriminator_loss``.
"""
from .attention_transfer_loss import AttentionTransferLoss
from .channel_wise_kd import ChannelWiseKD
from .fgfi_loss import FGFILoss
from .fitnets_loss import FitNetsLoss
from .hinton_kd import HintonKD
from .ka_loss import KAAdaptationLoss, KAAffinityLoss, KAReconstructionLoss
from .holistic_kd import HolisticKD, ScoreMapCritic
from .nfd_loss import NFDLoss
from .ofd_loss import OFDLoss, margin_from_bn
from .pair_wise_kd import PairWiseKD
from .pixel_wise_kd import PixelWiseKD
from .dist_loss import DISTLoss
from .dkd_loss import DKDLoss
from .pkd_loss import PKDLoss
from .bpkd_loss import BPKDLoss
from .cirkd_loss import CIRKDLoss

__all__ = [
    'AttentionTransferLoss', 'ChannelWiseKD', 'FGFILoss', 'FitNetsLoss', 'HintonKD', 'HolisticKD',
    'KAAdaptationLoss', 'KAAffinityLoss', 'KAReconstructionLoss',
    'NFDLoss', 'OFDLoss', 'PairWiseKD', 'PixelWiseKD', 'ScoreMapCritic', 'margin_from_bn'
]
__all__ += ['BPKDLoss', 'CIRKDLoss']
__all__ += ['DISTLoss', 'DKDLoss', 'PKDLoss']
