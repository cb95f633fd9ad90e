"""`pixelake`: Pixelake's command line, for any stage (`--api-url`, `--api-key`)."""

__version__ = "0.1.0"
