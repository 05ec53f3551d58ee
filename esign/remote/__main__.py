import sys

from esign.remote.server import main

sys.exit(main())
