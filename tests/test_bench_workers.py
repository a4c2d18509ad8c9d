"""bench/run.py --workers (bench/drain_workers.py): the figures it derives from
what it measured, and its reading of BENCH_PG_URL."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import drain_workers  # noqa: E402


def test_commits_per_second_and_the_share_of_the_ceiling_come_from_the_medians():
    text = drain_workers.render(
        [1, 2], rates={1: [900.0, 1000.0, 1100.0], 2: [1800.0, 2000.0, 2200.0]},
        commits={1: [0.5, 0.5, 0.5], 2: [0.25, 0.25, 0.3]},
        ceilings={1: [2000.0, 2000.0, 2000.0], 2: [4000.0, 5000.0, 6000.0]},
        n=1000, prefetch=4)
    one, two = (line.split("|") for line in text.splitlines()[3:5])
    # 1 worker: 1,000 tasks/s x 0.5 commits = 500 commits/s, a quarter of 2,000.
    assert one[1].split() == ["1,000", "1.00"]
    assert one[2].split() == ["0.500", "500"]
    assert one[3].split() == ["2,000", "0.25"]
    # 2 workers: twice the rate; 2,000 x 0.25 = 500 commits/s of 5,000.
    assert two[1].split() == ["2,000", "2.00"]
    assert two[2].split() == ["0.250", "500"]
    assert two[3].split() == ["5,000", "0.10"]


@pytest.mark.parametrize(("url", "expected"), [
    ("postgres://postgres@127.0.0.1:5432", ("127.0.0.1", "5432")),
    ("postgresql://bench@db.local", ("db.local", "5432")),
])
def test_the_server_is_read_from_the_bench_url(url, expected):
    assert drain_workers._host_port(url) == expected


def test_a_url_it_cannot_read_is_a_clear_error():
    with pytest.raises(RuntimeError, match="BENCH_PG_URL 'mysql://x'"):
        drain_workers._host_port("mysql://x")
