"""Entry point frozen by PyInstaller: the same as the ``salience`` console script."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
