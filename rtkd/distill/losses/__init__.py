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
from .holistic_kd import HolisticKD, ScoreMapCritic
from .nfd_loss import NFDLoss
from .ofd_loss import OFDLoss, margin_from_bn
from .pair_wise_kd import PairWiseKD
from .pixel_wise_kd import PixelWiseKD

__all__ = [
    'AttentionTransferLoss', 'ChannelWiseKD', 'FGFILoss', 'FitNetsLoss', 'HintonKD', 'HolisticKD',
    'NFDLoss', 'OFDLoss', 'PairWiseKD', 'PixelWiseKD', 'ScoreMapCritic', 'margin_from_bn'
]
