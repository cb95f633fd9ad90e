"""`make dev`: run Pixelake locally in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from chalicelib.logs import configure_console
from infra.local.stack import LocalStack


def main() -> int:
    configure_console(os.environ.get("PIXELAKE_LOG_LEVEL", "INFO"))
    home = Path(os.environ.get("PIXELAKE_HOME", ".pixelake")).resolve()
    port = int(os.environ.get("PORT", "5000"))
    aws_port = os.environ.get("PIXELAKE_AWS_PORT")
    stack = LocalStack(home=home, port=port, aws_port=int(aws_port) if aws_port else None)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        stack.start()
    except Exception:
        logging.getLogger("pixelake.stack").exception("the local stack could not start")
        stack.stop()
        return 1
    print(f"\nPixelake is running (state in {home}):", flush=True)
    for name, where in stack.urls.items():
        print(f"  {name:9} {where}", flush=True)
    print(
        f'\n  try: curl -X POST -F "file=@image.jpg" {stack.urls.get("api")}/api/upload\n  stop: Ctrl-C\n', flush=True
    )
    stopped.wait()
    print("stopping…", flush=True)
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
