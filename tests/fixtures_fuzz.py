"""The fuzz profile's tallies (a pytest plugin registered in tests/conftest.py): the fast
profile (tests/integration/test_fuzz.py) adds one per server, and the terminal summary
prints the cases tried per model, with outcomes, whatever the verbosity."""

from __future__ import annotations

import pytest

_TALLIES: dict = {}  # server fixture name -> (perf.fuzz.probe.FuzzTally, seconds)


@pytest.fixture(scope="session")
def fuzz_tallies() -> dict:
    return _TALLIES


def pytest_terminal_summary(terminalreporter):
    if not _TALLIES:
        return
    total = sum(sum(tally.cases.values()) for tally, _ in _TALLIES.values())
    seconds = sum(s for _, s in _TALLIES.values())
    terminalreporter.section(f"fuzz (fast profile): {total} cases in {seconds:.0f} s")
    for server, (tally, spent) in _TALLIES.items():
        terminalreporter.write_line(f"-- {server}: {spent:.0f} s, peak RSS {tally.peak_rss / 2**20:.0f} MiB")
        terminalreporter.write_line(tally.table())
