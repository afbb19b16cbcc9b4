import gc
import os
import sys

# tunneltop's models use no pydantic plugin, and looking for one reads every installed distribution's entry points
# when the first model is built: 14M instructions of a --once at 10,000 connections (1,980M) in a venv of 55
# distributions, more with more. Someone who wants theirs loaded sets PYDANTIC_DISABLE_PLUGINS themselves (empty:
# every plugin; or the names to skip).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
# No cyclic collection while the modules load: each pass would walk the objects made so far (pydantic's schemas
# among them) and find nothing to free, about 0.7% of a --once run at 10,000 connections.
gc.disable()
from tunneltop.cli import main  # noqa: E402

gc.enable()
sys.exit(main())
