import sys

from ingest.devtools.soak.run import main

sys.exit(main())
