"""`make` installs the CLI (pip install -e .); a bare checkout still finds it in cli/."""

import sys
from pathlib import Path

try:
    import pixelake_cli  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "cli"))
