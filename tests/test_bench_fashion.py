"""bench/fashion_mnist.py's bookkeeping: the log that lets an hours-long bench resume, the frontier
table's time ratios and the targets' verdicts. The runs themselves are replaced by made-up results
(the bench's own measurements are the benchmark, not a test)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def bench(monkeypatch):
    """bench/fashion_mnist.py, with runs that record their calls and return fixed results: the
    reference 92.00% in 100 s; ours 93.00% (+0.1 point a seed) in 5 s an epoch, 94% validation."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("fashion_bench", BENCH / "fashion_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.calls = []

    def reference_run(folder, seed):
        module.calls.append(("reference", seed))
        return dict(test_accuracy=0.92, train_seconds=100.0, best_val_accuracy=None)

    def our_run(data_dir, seed, flags):
        module.calls.append((flags, seed))
        epochs = 10 if flags == "" else 4
        accuracy = 0.93 + 0.001 * seed
        return dict(
            test_accuracy=accuracy,
            train_seconds=5.0 * epochs,
            best_val_accuracy=0.94,
            epochs_run=epochs,
        )

    monkeypatch.setattr(module, "reference_run", reference_run)
    monkeypatch.setattr(module, "our_run", our_run)
    return module


SETTINGS = {"default": "", "short": "--epochs 4"}


def test_an_interrupted_fashion_bench_resumes_with_the_runs_it_logged(bench, tmp_path, capsys):
    log = tmp_path / "bench.jsonl"
    bench.run_all(SETTINGS, [0], None, None, log)
    assert bench.calls == [("reference", 0), ("", 0), ("--epochs 4", 0)]
    with log.open("a") as file:  # killed while writing the next run's line
        file.write('{"flags": "", "seed": 1, "test_acc')
    bench.calls.clear()
    renamed = {"default": "", "four epochs": "--epochs 4"}  # a renamed setting keeps its runs
    done = bench.run_all(renamed, [0, 1], None, None, log)
    assert bench.calls == [("reference", 1), ("", 1), ("--epochs 4", 1)]
    assert set(done) == {(flags, seed) for flags in (None, "", "--epochs 4") for seed in (0, 1)}


def test_the_fashion_bench_table_gives_time_ratios_and_the_verdicts(bench, tmp_path, capsys):
    done = bench.run_all(SETTINGS, [0, 1], None, None, tmp_path / "bench.jsonl")
    capsys.readouterr()
    summary = bench.table(SETTINGS, [0, 1], done)
    bench.verdicts(summary)
    bench.epochs_within(SETTINGS, [0, 1], done, 1.0)
    out = capsys.readouterr().out
    assert "| default | `(none)` | 93.05 +- 0.07 | 94.00 +- 0.00 | 50 +- 0 | 0.50x |" in out
    assert "| short | `--epochs 4` | 93.05 +- 0.07 | 94.00 +- 0.00 | 20 +- 0 | 0.20x |" in out
    assert summary["default"] == pytest.approx((0.9305, 0.5))
    assert "default: 93.05% at 0.50x the reference's time (MISSES the target" in out
    assert "best setting at <= 0.5x the time: short, 93.05% vs the reference's 92.00% (meets" in out
    assert "1x the reference's time on this machine: 20 epochs of the default recipe" in out


def test_a_bench_setting_without_flags_syntax_is_a_usage_error(bench, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["fashion_mnist.py", "--setting", "long"])
    with pytest.raises(SystemExit) as caught:
        bench.main()
    assert caught.value.code == 2
    assert 'write NAME="FLAGS"' in capsys.readouterr().err
