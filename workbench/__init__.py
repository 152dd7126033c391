"""SR-ReaL workbench: data, training and inspection of dual-path (LOR / DTR) spatial VLMs."""

__version__ = "0.1.0"
