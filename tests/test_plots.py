"""The pictures a run leaves (plots.py), checked on the figures before they are saved: whole-number
epoch ticks and the best epoch marked, the run and its test accuracy in the title, text of 8 pt or
more, the confusion matrix as counts and as row fractions, values and n on the per-class bars,
captions with the true class's probability, and weights.png for every kind of model. Not graded."""

import numpy as np
import pytest

import plots

NAMES = ("cat", "dog", "ship")


@pytest.fixture
def figures(monkeypatch):
    """The figures plots.save is given, in order (they are saved as usual)."""
    caught, save = [], plots.save
    monkeypatch.setattr(
        plots, "save", lambda fig, path, **kw: (caught.append(fig), save(fig, path))
    )
    return caught


def rows(val_accuracies):
    return [
        dict(epoch=e, train_loss=2.0 / e, train_accuracy=0.1 * e, val_loss=2.1 / e, val_accuracy=v)
        for e, v in enumerate(val_accuracies, start=1)
    ]


def texts(fig):
    return [t for ax in fig.axes for t in ax.texts] + [t for t in fig.texts]


def test_learning_curves_tick_whole_epochs_mark_the_best_and_name_the_run(tmp_path, figures):
    plots.learning_curves(rows([0.3, 0.5, 0.5]), tmp_path / "c.png", "sweep/lr=0.1: test 41.0%")
    (fig,) = figures
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1, 2, 3], "whole epochs only"
        best = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert [list(line.get_xdata()) for line in best] == [[2, 2]], "the first best epoch"
    assert fig._suptitle.get_text() == "sweep/lr=0.1: test 41.0%"


def test_a_one_epoch_run_gets_one_whole_epoch_tick(tmp_path, figures):
    plots.learning_curves(rows([0.3]), tmp_path / "c.png")
    ax = figures[0].axes[0]
    assert [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]] == [1]


def test_the_confusion_matrix_shows_counts_beside_row_percentages_at_8_pt(tmp_path, figures):
    matrix = np.array([[3, 1, 0], [2, 2, 0], [0, 0, 0]])
    plots.save_confusion_matrix(matrix, NAMES, tmp_path / "m.png", tmp_path / "m.csv")
    (fig,) = figures
    counts, fractions = fig.axes[0], fig.axes[1]
    assert [t.get_text() for t in counts.texts][:3] == ["3", "1", "0"]
    assert [t.get_text() for t in fractions.texts][:6] == ["75", "25", "0", "50", "50", "0"]
    assert [t.get_text() for t in fractions.texts][6:] == ["0", "0", "0"], "an empty row: 0, no NaN"
    assert min(t.get_fontsize() for t in texts(fig)) >= 8
    colour_bars = [ax.get_ylabel() for ax in fig.axes[2:]]
    assert colour_bars == ["test images", "% of the true class (row)"]
    csv = (tmp_path / "m.csv").read_text().splitlines()
    assert csv == ["true\\predicted,cat,dog,ship", "cat,3,1,0", "dog,2,2,0", "ship,0,0,0"]


def test_per_class_bars_show_their_value_and_the_number_of_test_images(tmp_path, figures):
    matrix = np.array([[3, 1, 0], [2, 2, 0], [0, 0, 5]])
    plots.per_class_accuracy(matrix, NAMES, tmp_path / "p.png")
    (ax,) = figures[0].axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat\nn=4", "dog\nn=4", "ship\nn=5"]
    assert [t.get_text() for t in ax.texts] == ["75%", "50%", "100%"]
    assert ax.get_legend().get_texts()[0].get_text() == "overall 76.9%"


def test_per_class_accuracy_is_the_diagonal_over_each_row_and_0_for_an_empty_row():
    matrix = np.array([[3, 1, 0], [2, 2, 0], [0, 0, 0]])
    assert plots.class_accuracy(matrix).tolist() == [0.75, 0.5, 0.0]


def test_mistake_captions_give_the_true_class_probability_and_empty_rows_say_so(tmp_path, figures):
    images = np.zeros((3, 8, 8, 3), np.uint8)
    labels = np.array([0, 1, 0])
    probabilities = np.array([[0.1, 0.75, 0.15], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05]])
    plots.confident_mistakes(images, labels, probabilities, NAMES, tmp_path / "m.png")
    (fig,) = figures
    captions = [t.get_text() for t in fig.axes[0].texts]
    assert captions == [
        "pred: dog 75%\n(true: cat 10%)",
        "no dog image was misclassified",
        "no ship image was misclassified",
    ]
    assert min(t.get_fontsize() for t in texts(fig)) >= 8


def build(model: str, shape=(8, 8, 3)):
    import keras

    from cnn import build_cnn
    from linear_model import build_linear_model
    from mlp import build_mlp

    keras.utils.set_random_seed(0)
    if model == "cnn":
        return build_cnn(shape, 3, widths=(4,), dense_units=8)
    return build_linear_model(shape, 3) if model == "linear" else build_mlp(shape, 3)


def test_weights_png_shows_the_linear_models_templates_one_per_class(tmp_path, figures):
    model = build("linear")
    plots.weights(model, NAMES, tmp_path / "w.png")
    (fig,) = figures
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == list(NAMES)
    kernel = model.layers[-1].kernel.numpy()[:, 1].reshape(8, 8, 3)
    expected = (kernel - kernel.min()) / (kernel.max() - kernel.min())
    assert np.allclose(shown[1].images[0].get_array(), expected, atol=1e-6), "the dog template"
    assert "template per class" in fig._suptitle.get_text()
    assert (tmp_path / "w.png").stat().st_size > 0


def test_weights_png_shows_an_mlps_first_hidden_units(tmp_path, figures):
    plots.weights(build("mlp"), NAMES, tmp_path / "w.png")
    (fig,) = figures
    assert len([ax for ax in fig.axes if ax.images]) == 32
    assert "first layer" in fig._suptitle.get_text()


def test_weights_png_shows_a_cnns_filters_and_one_images_feature_maps(tmp_path, figures):
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    mean_std = (np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32))
    plots.weights(build("cnn"), NAMES, tmp_path / "w.png", image, mean_std)
    (fig,) = figures
    titles = [sub._suptitle.get_text() for sub in fig.subfigs]
    assert titles[0].startswith("First layer: 4 of its 4 3x3 filters")
    assert titles[1] == "one test image" and "feature map" in titles[2]
    maps = [ax.images[0].get_array() for ax in fig.subfigs[2].axes if ax.images]
    assert len(maps) == 4 and maps[0].shape == (8, 8)
    assert np.array_equal(fig.subfigs[1].axes[0].images[0].get_array(), image)


def test_numpy_mlps_picture_shows_w1_one_tile_per_hidden_unit():
    import numpy_mlp

    W1 = np.random.default_rng(0).normal(size=(32 * 32 * 3, 40))
    fig, ax = plots.plt.subplots()
    numpy_mlp.show_first_layer(ax, W1)
    grid = ax.images[0].get_array()
    assert grid.shape == (4 * 33 + 1, 8 * 33 + 1, 3), "32 of the 40 units, 8 a row"
    unit = W1[:, 9].reshape(32, 32, 3)  # the second row's second tile
    expected = (unit - unit.min()) / (unit.max() - unit.min())
    assert np.allclose(grid[34:66, 34:66], expected)
    assert ax.get_title().startswith("Tuned W1: 32 of 40 hidden units' input weights")
    plots.plt.close(fig)
