"""rtkd backbones (registered into mmseg MODELS on import)."""
