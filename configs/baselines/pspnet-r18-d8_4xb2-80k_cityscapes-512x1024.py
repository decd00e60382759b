# mmseg's PSPNet-R18 (d8) Cityscapes recipe as the Cityscapes distillation student, with the one
# change every rtkd config makes: cross-entropy averaged over non-ignored pixels
# (avg_non_ignore=True; mmseg's default divides by all pixels, ignored ones included).
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['rtkd'], allow_failed_imports=False)
model = dict(
    decode_head=dict(loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=dict(loss_decode=dict(avg_non_ignore=True)))
