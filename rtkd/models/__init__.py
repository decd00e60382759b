"""Networks, building blocks and task losses registered into mmseg's ``MODELS`` registry."""
from . import backbones, decode_heads, layers, losses  # noqa: F401
