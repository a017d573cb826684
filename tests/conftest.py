# --- hypothesis profiles (tests/unit/test_differential*.py, scripts/hunt.py) ---------------------------------
# "ci": derandomized (each test's examples come from a fixed seed derived from the test itself, no example
# database), chosen when CI=true, so a CI run never fails on a draw another run did not make. "hunt": fresh
# random examples without the database (scripts/hunt.py passes --hypothesis-seed). "dev" (default): random
# draws, failures replayed from .hypothesis/. HYPOTHESIS_PROFILE=<name> picks one explicitly. Every profile
# prints the falsifying example (the market seed is one of its arguments) and a reproduction blob.
import os as _os

from hypothesis import settings as _settings

_settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
_settings.register_profile("hunt", derandomize=False, database=None, deadline=None, print_blob=True)
_settings.register_profile("dev", deadline=None, print_blob=True)
_settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE")
                       or ("ci" if _os.environ.get("CI", "").lower() in ("true", "1") else "dev"))
