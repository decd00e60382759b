"""Input checks shared by the distillation losses (one-sentence messages that say what to fix)."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor


def check_shapes(loss_name: str,
                 student: Tensor,
                 teacher: Tensor,
                 *,
                 min_dim: int = 2,
                 max_dim: int = 4,
                 match_channels: bool = True,
                 match_spatial: bool = True) -> None:
    """Fail early when the student and teacher tensors cannot be compared.

    Args:
        loss_name (str): class name of the calling loss (used in the message).
        student (Tensor): student tensor, ``N x C [x H x W]``.
        teacher (Tensor): teacher tensor, same layout.
        min_dim (int): smallest accepted number of dimensions.
        max_dim (int): largest accepted number of dimensions.
        match_channels (bool): whether dim 1 (channels) must agree.
        match_spatial (bool): whether the trailing spatial dims must agree.

    Raises:
        ValueError: on a dimensionality, batch, channel or spatial mismatch; the message names
            both shapes and the connector that fixes it.
    """
    s_shape, t_shape = tuple(student.shape), tuple(teacher.shape)
    for what, shape in (('student', s_shape), ('teacher', t_shape)):
        if not min_dim <= len(shape) <= max_dim:
            raise ValueError(
                f'{loss_name} expects {min_dim}-D to {max_dim}-D tensors (N x C [x H x W]) but the '
                f'{what} tensor has shape {shape}; tap a feature map or logits tensor instead.')
    if len(s_shape) != len(t_shape):
        raise ValueError(
            f'{loss_name}: student shape {s_shape} and teacher shape {t_shape} have different '
            f'numbers of dimensions; tap comparable outputs on both sides.')
    if s_shape[0] != t_shape[0]:
        raise ValueError(
            f'{loss_name}: student batch size {s_shape[0]} != teacher batch size {t_shape[0]} '
            f'(shapes {s_shape} vs {t_shape}); feed the same batch to both models.')
    if match_channels and s_shape[1] != t_shape[1]:
        raise ValueError(
            f'{loss_name}: student shape {s_shape} and teacher shape {t_shape} differ in channels; '
            f"add connectors=dict(<name>=dict(type='ConvBNConnector', in_channels={s_shape[1]}, "
            f'out_channels={t_shape[1]})) on the student tap.')
    if match_spatial and s_shape[2:] != t_shape[2:]:
        raise ValueError(
            f'{loss_name}: student shape {s_shape} and teacher shape {t_shape} differ in spatial '
            f"size; add connectors=dict(<name>=dict(type='ResizeConnector', "
            f'size={tuple(t_shape[2:])})) on the student tap.')


def check_choice(loss_name: str, arg: str, value: str, choices: Sequence[str]) -> str:
    """Validate a string option.

    Args:
        loss_name (str): class name of the calling loss.
        arg (str): argument name.
        value (str): given value.
        choices (Sequence[str]): accepted values.

    Returns:
        str: ``value`` unchanged.

    Raises:
        ValueError: when ``value`` is not one of ``choices``.
    """
    if value not in choices:
        raise ValueError(f'{loss_name}: {arg}={value!r} is not supported; '
                         f'use one of {tuple(choices)}.')
    return value


def check_positive(loss_name: str, arg: str, value: float) -> float:
    """Validate a strictly positive number.

    Args:
        loss_name (str): class name of the calling loss.
        arg (str): argument name.
        value (float): given value.

    Returns:
        float: ``float(value)``.

    Raises:
        ValueError: when ``value`` is not > 0.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f'{loss_name}: {arg} must be a positive number, got {value!r}.')
    return float(value)
