import sys

from emoembed.cli import main

sys.exit(main())
