"""mom.companion.runinfo: the machine and the clock, read rather than typed."""
import os
import time

from mom.companion.runinfo import describe_hardware, format_seconds, hardware, start


def test_hardware_is_read_from_the_machine():
    hw = hardware("cpu")
    assert hw["device"] == "cpu" and hw["gpu"] is None
    assert 1 <= hw["cores"] <= (os.cpu_count() or 1) and hw["cpu"]
    assert describe_hardware(hw).startswith(f"{hw['cores']} cores of {hw['cpu']}")
    assert describe_hardware(hw).endswith("torch on cpu (no GPU)")


def test_header_and_footer():
    before = time.time()
    run = start("default", device="cpu")
    assert before <= run.started <= time.time()  # the clock at the call
    assert run.header().startswith("params 'default'; started ")
    assert " cores of " in run.header() and run.elapsed() >= 0
    assert run.footer().startswith("this run of params 'default' took ")


def test_format_seconds():
    assert format_seconds(42.4) == "42 s"
    assert format_seconds(185) == "3 min 05 s"
    assert format_seconds(3725) == "1 h 02 min"
