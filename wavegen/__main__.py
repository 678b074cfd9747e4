import sys

from wavegen.cli.main import main

sys.exit(main())
