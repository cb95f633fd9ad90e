import sys

from pixelake_cli.main import main

sys.exit(main())
