# SPDX-License-Identifier: MIT
"""CTest's way into pytest (python/CMakeLists.txt): runs the test files
given, prints why any test was skipped, and exits 77, which CTest reports
as Skipped (SKIP_RETURN_CODE), when one was or when pytest or numpy is
missing: a skip must never read as a pass. Otherwise pytest's status."""
import sys

SKIPPED = 77

try:
    import numpy  # noqa: F401  (the package needs it)
    import pytest
except ImportError as e:
    print("SKIPPED: %s (Debian: python3-pytest, python3-numpy)" % e, flush=True)
    sys.exit(SKIPPED)


class Skips:
    """Counts skips, of tests and of whole files (pytest.importorskip at
    module level skips the file's collection)."""

    def __init__(self):
        self.n = 0

    def pytest_runtest_logreport(self, report):
        if report.skipped and not hasattr(report, "wasxfail"):
            self.n += 1

    def pytest_collectreport(self, report):
        if report.skipped:
            self.n += 1


skips = Skips()
rc = pytest.main(["-q", "-rs", "-p", "no:cacheprovider", *sys.argv[1:]], plugins=[skips])
# 5: nothing collected, which is a skip only if a file was skipped.
if skips.n and rc in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
    print("SKIPPED: %d test(s) or file(s) did not run (reasons above)" % skips.n, flush=True)
    sys.exit(SKIPPED)
sys.exit(int(rc))
