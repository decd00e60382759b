"""Networks and building blocks registered into mmseg's ``MODELS`` registry."""
from . import backbones, decode_heads, layers  # noqa: F401
