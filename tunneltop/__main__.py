import gc
import sys

# No cyclic collection while the modules load: each pass would walk the objects made so far (pydantic's schemas
# among them) and find nothing to free, about 0.7% of a --once run at 10,000 connections.
gc.disable()
from tunneltop.cli import main  # noqa: E402

gc.enable()
sys.exit(main())
