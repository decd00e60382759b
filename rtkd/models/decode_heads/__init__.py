"""rtkd decode_heads (registered into mmseg MODELS on import)."""
