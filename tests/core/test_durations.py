"""The command line's duration notation (kbench.core.durations): read into seconds and written back."""

import pytest

from kbench.core.durations import fmt_gap, read_duration


@pytest.mark.parametrize("text, seconds", [("0", 0.0), ("3", 3.0), ("500us", 500e-6), ("500µs", 500e-6),
                                           (" 2 ms ", 2e-3), ("0.5s", 0.5), (".5s", 0.5), ("40ns", 40e-9)])  # fmt: skip
def test_durations_read_in_every_unit(text, seconds):
    assert read_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "-1ms", "1 min", "1e-3", "ms"])
def test_what_is_not_a_duration_reads_as_none(text):
    assert read_duration(text) is None


@pytest.mark.parametrize("seconds, text", [(0.0, "0"), (500e-6, "500us"), (0.02, "20ms"), (1.5, "1.5s"),
                                           (40e-9, "40ns")])  # fmt: skip
def test_gaps_are_written_as_the_command_line_writes_them_and_read_back(seconds, text):
    assert fmt_gap(seconds) == text
    assert read_duration(text) == pytest.approx(seconds)
