import sys

from tunneltop.cli import main

sys.exit(main())
