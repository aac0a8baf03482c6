"""compare.py on the folders that real runs and sweeps leave: damaged or wrong-typed files, runs
not finished (only config.json: a sweep stopped early), diverged runs; and picture paths checked
before any work (compare.py --out, cifar10_input.py --show) with temporary files that keep their
suffix. Not graded."""

import csv
import json
import os
from pathlib import Path

import pytest

import cifar10_input
import compare
from plumbing import files, runs
from plumbing.errors import report

OPTIONS = {"model": "mlp", "lr": 0.001, "seed": 0, "num_train_examples": 100}
RESULTS = {
    "test_accuracy": 0.25,
    "best_val_accuracy": 0.3,
    "best_epoch": 1,
    "epochs_run": 1,
    "train_seconds": 2.0,
    "parameters": 1234,
    "train_examples": 100,
}


def make_run(
    folder: Path, *, results: dict | str | None = RESULTS, rows: int = 1, **options
) -> Path:
    """A run folder as train.py leaves it, without TensorBoard logs: config.json, metrics.csv and
    .json."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"options": {**OPTIONS, **options}}))
    if rows:
        runs.write_metrics_csv(
            folder,
            [
                dict(
                    epoch=e,
                    train_loss=2.0,
                    train_accuracy=0.2,
                    val_loss=2.1,
                    val_accuracy=0.3,
                    learning_rate=0.001,
                    seconds=1.0,
                    images_per_second=100.0,
                    weight_penalty=1.0,
                )
                for e in range(1, rows + 1)
            ],
        )
    if results is not None:
        (folder / "metrics.json").write_text(
            results if isinstance(results, str) else json.dumps(results)
        )
    return folder


def table(out: Path) -> dict:
    return {row["runs"]: row for row in csv.DictReader(open(out.with_suffix(".csv")))}


# -------------------------------------------------------------------------------- what sweeps leave
@pytest.mark.parametrize(
    "damage",
    [
        '{"test_accuracy": 0.2',
        "[]",
        '{"test_accuracy": "high"}',
        '{"best_epoch": true}',
        "\x00\xff",
    ],
)
def test_a_run_with_a_damaged_metrics_json_is_left_out_with_one_line(damage, tmp_path, capsys):
    make_run(tmp_path / "sweep" / "lr=0.001")
    make_run(tmp_path / "sweep" / "lr=0.01", results=damage, lr=0.01)
    out = tmp_path / "c.png"
    assert compare.main([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"note: {tmp_path / 'sweep' / 'lr=0.01'} is left out: ")
    assert "metrics.json is damaged" in err and err.count("\n") == 1, err
    assert (
        list(table(out)) == ["lr=0.001"] and table(out)["lr=0.001"]["test accuracy (%)"] == "25.0"
    )


def test_a_run_holding_only_its_config_is_compared_as_unfinished(tmp_path, capsys):
    make_run(tmp_path / "sweep" / "lr=0.001")
    make_run(
        tmp_path / "sweep" / "lr=0.01", results=None, rows=0, lr=0.01
    )  # killed before its first epoch
    out = tmp_path / "c.png"
    assert compare.main([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
    unfinished = table(out)["lr=0.01"]
    assert (unfinished["test accuracy (%)"], unfinished["epochs"]) == ("unfinished", "0")
    assert out.stat().st_size > 0


def test_a_damaged_config_or_metrics_csv_is_left_out_and_nothing_readable_is_one_line(
    tmp_path, capsys
):
    make_run(tmp_path / "sweep" / "a")
    (tmp_path / "sweep" / "a" / "config.json").write_text('{"options": ')
    make_run(tmp_path / "sweep" / "b")
    (tmp_path / "sweep" / "b" / "metrics.csv").write_text("epoch,train_loss\nnot,numbers\n")
    assert compare.main([str(tmp_path / "sweep"), "--out", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert (
        len(err) == 3
        and "a/config.json is damaged" in err[0]
        and "b/metrics.csv is damaged" in err[1]
    )
    assert err[2].startswith("error: no run could be read (") and not (tmp_path / "c.png").exists()


def test_a_diverged_run_reads_diverged_in_the_table(tmp_path, capsys):
    make_run(tmp_path / "sweep" / "lr=0.001")
    make_run(tmp_path / "sweep" / "lr=1e9", results=None, rows=0, lr=1e9)
    files.write_json(
        tmp_path / "sweep" / "lr=1e9" / "diverged.json", {"loss": "inf", "epoch": 1, "step": 2}
    )
    out = tmp_path / "c.png"
    assert compare.main([str(tmp_path / "sweep"), "--out", str(out)]) == 0
    row = table(out)["lr=1e9"]
    assert [row[c] for c in ("best val accuracy (%)", "test accuracy (%)", "parameters")] == [
        "diverged"
    ] * 3
    markdown = out.with_suffix(".md").read_text()
    assert "| lr=1000000000.0 | lr=1e9 | diverged | diverged | diverged | 0 |" in markdown


def test_seeds_of_a_setting_say_how_many_diverged(tmp_path):
    for seed, accuracy in ((0, 0.2), (1, 0.3)):
        make_run(
            tmp_path / "s" / f"lr=0.001_seed={seed}",
            results={**RESULTS, "test_accuracy": accuracy},
            seed=seed,
        )
        make_run(tmp_path / "s" / f"lr=0.01_seed={seed}", lr=0.01, seed=seed)
    make_run(tmp_path / "s" / "lr=0.001_seed=2", results=None, rows=0, seed=2)
    files.write_json(
        tmp_path / "s" / "lr=0.001_seed=2" / "diverged.json", {"loss": "nan", "epoch": 1}
    )
    out = tmp_path / "c.png"
    assert compare.main([str(tmp_path / "s"), "--out", str(out)]) == 0
    rows = {row["options"]: row for row in csv.DictReader(open(out.with_suffix(".csv")))}
    assert (rows["lr=0.001"]["runs"], rows["lr=0.01"]["runs"]) == ("3 seeds", "2 seeds")
    assert rows["lr=0.001"]["test accuracy (%)"] == "25.0 +- 7.1 (1 diverged)"
    assert rows["lr=0.001"]["parameters"] == "1,234", "the other cells: over the runs that finished"
    assert rows["lr=0.01"]["test accuracy (%)"] == "25.0"


# ------------------------------------------------------------------------------------ picture paths
@pytest.mark.parametrize("name", ["x.txt", "x", "runs/v1.2"])
def test_compare_refuses_a_picture_name_without_an_image_suffix_before_any_work(
    name, tmp_path, capsys, monkeypatch
):
    make_run(tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    assert compare.main(["run", "--out", name]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"usage error: argument --out: {name} is not a picture file name: end it in .png "
        f"(or .pdf, .svg, .jpg) (see python compare.py --help)\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["run"], "nothing written"


def test_cifar10_input_refuses_a_show_name_without_an_image_suffix_before_the_download(
    tmp_path, capsys
):
    code = report(
        cifar10_input.main,
        [
            "--data-dir",
            str(tmp_path / "data"),
            "--data-url",
            "http://127.0.0.1:9/x",
            "--show",
            "samples",
        ],
    )
    assert (
        code == 2
        and "argument --show: samples is not a picture file name" in capsys.readouterr().err
    )
    assert not (tmp_path / "data").exists(), "checked before the data is fetched"


TEMPORARIES = [
    ("best.keras", "best.tmp-{}.keras"),
    ("a.b.png", "a.b.tmp-{}.png"),
    ("checkpoint", "checkpoint.tmp-{}"),
]


@pytest.mark.parametrize("name,temporary", TEMPORARIES)
def test_atomic_writes_keep_the_real_suffix_in_their_temporary_name(name, temporary, tmp_path):
    seen = []
    files.atomic_write(tmp_path / name, lambda tmp: (seen.append(tmp.name), tmp.write_text("x")))
    assert seen == [temporary.format(os.getpid())] and (tmp_path / name).read_text() == "x"
    stale = tmp_path / temporary.format(2**22 + 1)  # above Linux's largest pid: a dead process
    stale.write_text("left by a kill -9")
    files.remove_stale_temporaries(tmp_path)
    assert not stale.exists(), "the stale-temporary cleaner recognises the name"


# --------------------------------------------------------------------------------------- mixed runs
def drawn(monkeypatch, argv: list[str]):
    """compare.main(argv)'s figure, caught before it is saved (and then saved as usual)."""
    figures = []
    save = compare.plots.save
    monkeypatch.setattr(
        compare.plots, "save", lambda fig, path: (figures.append(fig), save(fig, path))
    )
    assert compare.main(argv) == 0
    (figure,) = figures
    return figure


def test_mixed_runs_get_short_labels_below_the_axes_and_no_data_size_panel(tmp_path, monkeypatch):
    mlp = dict(model="mlp", preset="mlp", weight_decay=1e-4, widths=(512,), dropout=0.0)
    for lr in (0.0001, 0.001, 0.01):
        make_run(tmp_path / "sweep-mlp-lr" / f"lr={lr}", lr=lr, num_train_examples=1000, **mlp)
    linear = {**RESULTS, "train_examples": 4577}
    make_run(
        tmp_path / "linear-1122",
        results=linear,
        model="linear",
        preset="linear",
        num_train_examples=None,
        weight_decay=0.0,
    )
    out = tmp_path / "c.png"
    figure = drawn(
        monkeypatch,
        [str(tmp_path / "sweep-mlp-lr"), str(tmp_path / "linear-1122"), "--out", str(out)],
    )
    assert len(figure.axes) == 2, "the training-set size is not the only difference: no size panel"
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        "mlp, lr=0.0001",
        "mlp, lr=0.001",
        "mlp, lr=0.01",
        "linear-1122",
    ], "the preset, then what differs among its runs; a preset's only run: its name"
    assert all(ax.get_legend() is None for ax in figure.axes), "one legend, outside the axes"
    below = legend.get_window_extent().y1
    assert all(below <= ax.get_window_extent().y0 for ax in figure.axes), "below the panels"
    assert [ax.get_xlabel() for ax in figure.axes] == ["epoch", "epoch"]


def test_the_data_size_panel_appears_when_only_the_size_and_seed_differ_with_the_real_count(
    tmp_path, monkeypatch
):
    for seed in (0, 1):
        make_run(
            tmp_path / "s" / f"n=1000_seed={seed}",
            num_train_examples=1000,
            seed=seed,
            results={**RESULTS, "train_examples": 1000},
        )
        make_run(
            tmp_path / "s" / f"n=all_seed={seed}",
            num_train_examples=None,
            seed=seed,
            results={**RESULTS, "train_examples": 4577},
        )
    figure = drawn(monkeypatch, [str(tmp_path / "s"), "--out", str(tmp_path / "c.png")])
    assert [ax.get_title() for ax in figure.axes][2] == "more data"
    ticks = [tick.get_text() for tick in figure.axes[2].get_xticklabels()]
    assert ticks == ["1,000", "4,577"], "the real count for all"
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "num-train-examples=4577, seed=1" in labels and not any("None" in t for t in labels)


def test_the_training_loss_panel_reads_the_runs_steps_csv_against_the_epoch(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run")
    (run / "steps.csv").write_text(
        "step,images,epoch,loss,learning_rate\n1,50,0.5,2.3,0.1\n2,100,1.0,2.1,0.1\n3,150,1."
    )  # the last line torn by a kill
    figure = drawn(monkeypatch, [str(run), "--out", str(tmp_path / "c.png")])
    (line,) = figure.axes[1].get_lines()
    assert (list(line.get_xdata()), list(line.get_ydata())) == ([0.5, 1.0], [2.3, 2.1])


def test_table_cells_with_commas_are_quoted_by_the_csv_module(tmp_path):
    make_run(tmp_path / "s" / "a", widths=(512, 256))
    make_run(tmp_path / "s" / "b", widths=(64,))
    out = tmp_path / "c.png"
    assert compare.main([str(tmp_path / "s"), "--out", str(out)]) == 0
    assert out.with_suffix(".csv").read_text().splitlines()[1].startswith('"widths=512,256",a,')
    assert table(out)["a"]["options"] == "widths=512,256"
