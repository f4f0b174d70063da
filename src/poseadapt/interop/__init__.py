"""Checkpoint interop: our safetensors format, allow-listed .pth loading, and importers from foreign layouts."""
