"""rtkd layers (registered into mmseg MODELS on import)."""
