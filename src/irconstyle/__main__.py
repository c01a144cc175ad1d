import sys

from irconstyle.cli import main

sys.exit(main())
