"""scripts/bench_scale.py --end-to-end, small: the survey plus 10,000 synthetic papers through the
real ingest (precomputed vectors) and the whole question path in a fresh process. The 100 k and
1 M runs are made by hand; their figures are in docs/evaluation.md."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_end_to_end_at_ten_thousand_papers(tmp_path):
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    bench_scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_scale)

    report = bench_scale.end_to_end(10_000, 20, tmp_path)
    assert report["papers"] == 10_000 + 424 and report["index_kind"] == "flat"
    assert 0 < report["p50_ms"] <= report["p99_ms"]
    assert report["rss_mb"] > 0 and report["disk_bytes_per_paper"] > 384 * 4  # at least the float32 vector
    assert not list(tmp_path.glob("synthetic.*"))  # the generated inputs are removed
