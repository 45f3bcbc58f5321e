"""The latency options (kbench.orchestrate.latency_options): --gap, --threads and --rate read and refused in one line, by the
library and the CLI."""

import pytest

from kbench import api
from kbench.core import errors
from kbench.orchestrate import latency_options

from conftest import run_cli

@pytest.mark.parametrize("text, seconds", [("0", 0.0), ("500us", 500e-6), ("500µs", 500e-6), ("1ms", 1e-3),
                                           ("20ms", 0.02), ("0.5s", 0.5), (" 2 ms ", 2e-3), (0.01, 0.01)])  # fmt: skip
def test_gaps_parse(text, seconds):
    assert latency_options.parse_gap(text) == pytest.approx(seconds)


def test_gap_lists_are_sorted_without_duplicates():
    assert latency_options.parse_gaps("20ms,0,1ms,0.001s") == (0.0, 0.001, 0.02)
    assert latency_options.parse_gaps(None) == () and latency_options.parse_threads(None) == ()
    assert latency_options.parse_threads("2,1,2") == (1, 2)


@pytest.mark.parametrize("kwargs, words", [
    ({"gaps": "-1ms"}, "--gap -1ms is negative"),
    ({"gaps": "fast"}, "--gap 'fast' is not a duration"),
    ({"gaps": "1ms,"}, "--gap has an empty entry"),
    ({"gaps": "10s", "cell_budget": 4}, "--gap 10s: 30 single calls after it idle 300 s, more than the 4 s cell"),
    ({"threads": "0"}, "--threads 0 must be 1 or more"),
    ({"threads": "-2"}, "--threads -2 must be 1 or more"),
    ({"threads": "two"}, "--threads 'two' is not a whole number"),
])  # fmt: skip
def test_the_library_refuses_bad_gaps_and_threads_in_one_line(kwargs, words):
    with pytest.raises(errors.UsageError) as err:
        api.plan(["dense"], **kwargs)
    assert str(err.value).startswith(words) and "\n" not in str(err.value)


def test_a_good_plan_keeps_its_gaps_and_threads():
    plan = api.plan(["dense"], gaps="0,1ms,20ms", threads="1,2")
    assert plan.gaps == (0.0, 0.001, 0.02) and plan.threads == (1, 2) and plan.thread_settings == (1, 2)
    assert api.plan(["dense"]).thread_settings == (None,)


@pytest.mark.parametrize("flag, words", [("--gap=10s", "--gap 10s: 30 single calls"),
                                         ("--threads=0", "--threads 0 must be 1 or more")])  # fmt: skip
def test_the_cli_refuses_bad_gaps_and_threads_with_exit_2(flag, words, tmp_path):
    done = run_cli("run", "--model", "dense", flag, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("text, rate", [("50/s", 50.0), ("50", 50.0), ("600/min", 10.0), (" 2.5 / s", 2.5)])
def test_rates_parse(text, rate):
    assert latency_options.parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("kwargs, words", [
    ({"rate": "0/s"}, "--rate 0/s must be more than 0"),
    ({"rate": "fast"}, "--rate 'fast' is not a request rate"),
    ({"rate": "1/s", "cell_budget": 4}, "--rate 1/s: 30 requests arrive over about 30 s"),
])  # fmt: skip
def test_the_library_refuses_bad_rates_in_one_line(kwargs, words):
    with pytest.raises(errors.UsageError) as err:
        api.plan(["dense"], **kwargs)
    assert str(err.value).startswith(words) and "\n" not in str(err.value)
