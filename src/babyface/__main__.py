import sys

from babyface.cli import main

sys.exit(main())
