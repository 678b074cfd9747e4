import sys

from wavegen.cli import main

sys.exit(main())
