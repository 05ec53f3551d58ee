import sys

from esign.agent import main

sys.exit(main())
