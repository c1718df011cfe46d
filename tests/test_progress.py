"""Progress told once: plain lines with count, total, rate and ETA when not on a terminal."""

import io

import pytest

from adabiobert.model.engine import StepProgress
from adabiobert.progress import Progress, format_seconds


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (59, "59 s"), (245, "4 min 05 s"), (3725, "1 h 02 min")])
def test_durations_read_as_people_say_them(seconds, text):
    assert format_seconds(seconds) == text


def clock(monkeypatch, times):
    """Make time.monotonic return the given times, one per call (the last one forever)."""
    ticks = iter(times)
    last = [times[0]]

    def monotonic():
        last[0] = next(ticks, last[0])
        return last[0]

    monkeypatch.setattr("adabiobert.progress.time.monotonic", monotonic)


def test_off_a_terminal_it_prints_lines_with_total_rate_and_eta_and_no_carriage_return(monkeypatch):
    out = io.StringIO()
    clock(monkeypatch, [0.0, 10.0, 20.0, 30.0, 40.0])  # start, two updates, close (elapsed, rate)
    progress = Progress("annotate", 8, "article", stream=out, every_s=0)
    progress.update(2)   # t=10: 5 s/article so far (start-up included)
    progress.update(2, note="12 mentions")   # t=20: 5 s/article since the first update
    progress.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "annotate: 2/8 articles (25 %), 5.0 s/article, ETA 30 s"
    assert lines[1] == "annotate: 4/8 articles (50 %), 5.0 s/article, ETA 20 s, 12 mentions"
    assert lines[2].startswith("annotate: 4/8 articles in ") and lines[2].endswith("; 12 mentions")


def test_lines_are_throttled_to_one_per_interval_and_a_short_stage_has_none_until_it_closes(monkeypatch):
    out = io.StringIO()
    clock(monkeypatch, [0.0, 1.0, 2.0, 3.0, 31.0])
    progress = Progress("train", 100, "step", stream=out, every_s=30)
    for _ in range(4):
        progress.update(20)
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == ["train: 80/100 steps (80 %)"]  # 30 s after the start


def test_disabled_progress_prints_nothing():
    out = io.StringIO()
    with Progress("ingest", 3, "file", stream=out, enabled=False) as progress:
        progress.update(3)
        progress.write("not shown")
    assert out.getvalue() == ""


def test_step_progress_counts_steps_over_the_run_from_the_first_epoch_trained():
    resumed = StepProgress(epoch=3, epochs=4, first_epoch=3, step=5, steps=19, loss=0.3, alpha=0.0)
    assert (resumed.run_step, resumed.run_steps) == (5, 38)
