import sys

from bamkit.cli import main

sys.exit(main())
