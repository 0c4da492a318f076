import sys

from fasttask.cli import main

sys.exit(main())
