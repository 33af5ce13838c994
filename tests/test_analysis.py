"""Per-class precision, recall and F1; the most confidently wrong test images; export to ONNX and TorchScript."""

import csv
import importlib.util
import json
import re

import pytest
import torch
from conftest import run_cli

from deepernets import cli, data
from deepernets.config import RunConfig
from deepernets.data.subset import subset_indices
from deepernets.errors import UserError
from deepernets.infer import export, predict
from deepernets.run import scores
from deepernets.run.folder import RunDir
from deepernets.train import artifacts, evaluate
from deepernets.train.fit import train

# rows are true classes, columns predicted ones
CONFUSION = torch.tensor(
    [
        [8, 2, 0, 0],
        [1, 6, 3, 0],
        [1, 0, 4, 0],
        [0, 0, 0, 0],  # a class without test images that is never predicted
    ]
)
# by hand: precision = diagonal / column sum, recall = diagonal / row sum, F1 = 2·diagonal / (row + column sum)
EXPECTED = [
    (8 / 10, 8 / 10, 16 / 20, 10),
    (6 / 8, 6 / 10, 12 / 18, 10),
    (4 / 7, 4 / 5, 8 / 12, 5),
    (0.0, 0.0, 0.0, 0),
]


def read_csv(path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_per_class_scores_equal_a_hand_computed_confusion_matrix():
    computed = scores.per_class_scores(CONFUSION.tolist())
    for score, (precision, recall, f1, images) in zip(computed, EXPECTED, strict=True):
        assert score.precision == pytest.approx(100 * precision)
        assert score.recall == pytest.approx(100 * recall)
        assert score.f1 == pytest.approx(100 * f1)
        assert score.images == images
    accuracy = 100.0 * CONFUSION.diag() / CONFUSION.sum(1).clamp(min=1)  # each class's accuracy: its recall
    assert [s.recall for s in computed] == pytest.approx(accuracy.tolist())


def test_most_confused_pairs_add_both_directions_and_come_most_first():
    pairs = scores.most_confused_pairs(CONFUSION.tolist(), ["a", "b", "c", "d"], top=2)
    assert pairs == [("a", "b", 3), ("b", "c", 3)]  # a↔c (1) is third; pairs never confused are left out
    assert scores.format_pairs(pairs) == "a↔b: 3, b↔c: 3"


def evaluation_of(confusion: torch.Tensor, confidences: list[float]) -> evaluate.Evaluation:
    """An evaluation whose predictions make `confusion`, image by image in row order."""
    pairs = [(t, p) for t in range(len(confusion)) for p in range(len(confusion)) for _ in range(confusion[t, p])]
    labels, predictions = (torch.tensor(v) for v in zip(*pairs, strict=True))
    return evaluate.Evaluation(0.0, 0.0, predictions, labels, torch.tensor(confidences))


def test_results_files_hold_per_class_scores_and_the_confidently_wrong_images_in_order(tmp_path):
    n = int(CONFUSION.sum())
    confidences = torch.linspace(0.3, 0.99, n)[torch.randperm(n, generator=torch.Generator().manual_seed(0))]
    result = evaluation_of(CONFUSION, confidences.tolist())
    classes = ["a", "b", "c", "d"]
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    test_indices = torch.arange(n) * 3 + 100  # where each evaluated image sits in the whole test split
    run = RunDir(tmp_path / "run")
    files = [f"test/{i}.png" for i in range(400)]  # a folder dataset's test split, in order
    evaluate.write_results(run, result, classes, images, test_indices, files)

    rows = read_csv(run.path / "per_class.csv")
    assert list(rows[0]) == ["class", "accuracy", "precision", "recall", "f1", "images"]
    for row, (precision, recall, f1, count) in zip(rows, EXPECTED, strict=True):
        assert float(row["precision"]) == pytest.approx(100 * precision, abs=0.005)
        assert float(row["recall"]) == float(row["accuracy"]) == pytest.approx(100 * recall, abs=0.005)
        assert float(row["f1"]) == pytest.approx(100 * f1, abs=0.005)
        assert int(row["images"]) == count

    wrong = read_csv(run.path / "confidently_wrong.csv")
    positions = [(int(r["test_index"]) - 100) // 3 for r in wrong]
    mistakes = [i for i in range(n) if result.predictions[i] != result.labels[i]]
    assert len(wrong) == min(16, len(mistakes)) == 7
    assert sorted(positions) == mistakes  # every wrong image, and only wrong ones
    probabilities = [float(r["probability"]) for r in wrong]
    assert probabilities == sorted(probabilities, reverse=True)
    for r, i in zip(wrong, positions, strict=True):
        assert r["true"] == classes[result.labels[i]] != r["predicted"] == classes[result.predictions[i]]
        assert r["file"] == f"test/{int(test_indices[i])}.png"
        assert float(r["probability"]) == pytest.approx(confidences[i].item(), abs=1e-4)
    assert (run.plots / "confidently_wrong.png").exists()


def test_the_confusion_csv_of_a_class_named_true_keeps_every_row_label_and_count(tmp_path):
    confusion = torch.tensor([[3, 1], [2, 4]])
    result = evaluation_of(confusion, [0.9] * 10)
    run = RunDir(tmp_path / "run")
    images = torch.zeros(10, 1, 4, 4, dtype=torch.uint8)
    evaluate.write_results(run, result, ["false", "true"], images, torch.arange(10))
    assert read_csv(run.path / "confusion.csv") == [
        {"true \\ predicted": "false", "false": "3", "true": "1"},
        {"true \\ predicted": "true", "false": "2", "true": "4"},
    ]


def test_confidently_wrong_takes_the_most_confident_mistakes_first():
    result = evaluate.Evaluation(
        0.0,
        0.0,
        predictions=torch.tensor([0, 1, 2, 0, 1, 2]),
        labels=torch.tensor([0, 0, 0, 1, 1, 1]),
        confidences=torch.tensor([0.99, 0.6, 0.9, 0.7, 0.95, 0.9]),
    )
    assert evaluate.confidently_wrong(result) == [2, 5, 3, 1]  # equal 0.9: the earlier image first
    assert evaluate.confidently_wrong(result, top=2) == [2, 5]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    """resnet20 trained for 2 epochs on 512 MNIST images, tested on 1,000."""
    runs = tmp_path_factory.mktemp("runs")
    config = RunConfig(model="resnet20", dataset="mnist", epochs=2, subset=512, test_subset=1000, batch_size=64,
                       data_dir=str(data_dir), runs_dir=str(runs), name="tiny")  # fmt: skip
    assert train(config, log=lambda _: None)["status"] == "finished"
    return runs / "tiny"


def check_confidently_wrong(run, data_dir, result: evaluate.Evaluation | None = None) -> None:
    """The listed images are wrong, with true classes from the dataset itself, most confident first."""
    dataset = data.load("mnist", data_dir)
    rows = read_csv(run / "confidently_wrong.csv")
    assert len(rows) == 16
    probabilities = [float(r["probability"]) for r in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    for r in rows:
        assert r["true"] == dataset.classes[dataset.test_labels[int(r["test_index"])]] != r["predicted"]
    if result is not None:  # against every image of the evaluation the file was written from
        position = {int(i): p for p, i in enumerate(subset_indices(len(dataset.test_labels), 1000))}
        for r in rows:
            p = position[int(r["test_index"])]
            assert dataset.classes[result.predictions[p]] == r["predicted"]
            assert result.confidences[p].item() == pytest.approx(float(r["probability"]), abs=1e-4)
        unlisted = result.predictions != result.labels
        unlisted[[position[int(r["test_index"])] for r in rows]] = False
        assert result.confidences[unlisted].max().item() <= probabilities[-1] + 1e-6
    assert (run / "plots" / "confidently_wrong.png").exists()


def test_training_and_evaluate_write_per_class_scores_and_confidently_wrong_images(tiny_run, data_dir):
    check_confidently_wrong(tiny_run, data_dir)  # as training left it
    loaded = predict.load_run(tiny_run, "cpu")
    result, confusion = predict.evaluate_run(loaded)
    check_confidently_wrong(tiny_run, data_dir, result)
    rows = read_csv(tiny_run / "per_class.csv")
    for row, score in zip(rows, scores.per_class_scores(confusion.tolist()), strict=True):
        assert float(row["precision"]) == round(score.precision, 2) and float(row["f1"]) == round(score.f1, 2)

    printed = run_cli("evaluate", str(tiny_run), cwd=tiny_run.parent)
    assert printed.returncode == 0, printed.stderr
    summary = json.loads((tiny_run / "summary.json").read_text())  # evaluated in the precision it trained in
    assert (
        f"in {summary['precision']} (the run recorded {summary['final_test_acc']:.2f}% in {summary['precision']})"
        in (printed.stdout.splitlines()[0])
    )
    assert "precision   recall       F1  images" in printed.stdout
    first = rows[0]
    assert f"{float(first['precision']):.2f}%" in printed.stdout.splitlines()[3]
    assert "confidently_wrong.png" in printed.stdout


def test_predict_gives_an_image_file_the_probabilities_the_run_gives_that_test_image(tiny_run, data_dir, tmp_path):
    """A 28×28 MNIST test image saved as a file is read at the dataset's own size and resized to the run's 32 as in
    training and evaluate, so its probabilities are the test pipeline's, not those of a PIL resize."""
    from PIL import Image

    loaded = predict.load_run(tiny_run)
    dataset = data.load("mnist", data_dir)
    Image.fromarray(dataset.test_images[0, 0].numpy()).save(tmp_path / "digit.png")
    name, probability = predict.predict(loaded, [str(tmp_path / "digit.png")], top=1)[0][0]
    x, _ = next(iter(loaded.batches(dataset.test_images[:1], dataset.test_labels[:1])))
    with torch.inference_mode(), loaded.precision.autocast():
        expected = loaded.model(x).float().softmax(1)[0]
    assert name == dataset.classes[int(expected.argmax())]
    assert probability == pytest.approx(float(expected.max()), abs=1e-6)


def test_torchscript_export_classifies_as_the_run_does(tiny_run, tmp_path):
    out = tmp_path / "model.pt"
    result = run_cli("export", str(tiny_run), "--format", "torchscript", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    agreement = float(re.search(r"agrees with the run's model .* on ([\d.]+)%", result.stdout).group(1))
    assert agreement >= 99.9, result.stdout
    assert "pixels in [0, 1]" in result.stdout

    # the file on its own: plain pixels in, the run's classes out
    model, info = predict.plain_model(RunDir(tiny_run))
    pixels = torch.rand(5, 1, 32, 32)
    scripted = export.load("torchscript", out)
    normalized = (pixels - torch.tensor(info["mean"]).view(1, -1, 1, 1)) / torch.tensor(info["std"]).view(1, -1, 1, 1)
    with torch.inference_mode():
        torch.testing.assert_close(scripted(pixels), model(normalized), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(
    any(importlib.util.find_spec(p) is None for p in export.ONNX_PACKAGES), reason="pip install -e '.[onnx]'"
)
def test_onnx_export_classifies_as_the_run_does(tiny_run, tmp_path):
    result = export.export_run(tiny_run, "onnx", tmp_path / "model.onnx")
    assert result.agreement >= 99.9 and result.images == 1000
    import onnxruntime

    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map["deepernets"]
    assert '"classes": ["0", "1"' in meta
    assert session.run(None, {"images": torch.rand(3, 1, 32, 32).numpy()})[0].shape == (3, 10)


def test_an_export_that_disagrees_fails_and_leaves_no_file(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export, "REQUIRED_AGREEMENT", 100.1)  # not even a perfect file passes
    out = tmp_path / "model.pt"
    assert cli.main(["export", str(tiny_run), "--format", "torchscript", "--out", str(out)]) == 1
    assert "export failed" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_export_replaces_no_existing_file_unless_forced(tiny_run, tmp_path):
    mine = tmp_path / "mine.pt"
    mine.write_text("the user's own file")
    with pytest.raises(UserError, match=r"--out .*mine.pt exists: choose another file, or pass --force to replace it"):
        export.export_run(tiny_run, "torchscript", mine)
    assert mine.read_text() == "the user's own file"
    with pytest.raises(UserError, match=r"is a folder: name the file, such as .*model.torchscript.pt"):
        export.export_run(tiny_run, "torchscript", tmp_path)
    assert export.export_run(tiny_run, "torchscript", mine, force=True).agreement >= 99.9


def test_a_run_that_did_not_finish_is_used_with_a_note(tmp_path):
    assert predict.unfinished("runs/r", {"status": "diverged", "epochs_completed": 3}) == (
        "runs/r diverged; its checkpoint is of epoch 3, its last good one"
    )
    assert "has not finished (status running); its checkpoint is of epoch 1" in predict.unfinished(
        "runs/r", {"status": "running", "epochs_completed": 1}
    )
    assert predict.unfinished("runs/r", {"status": "finished"}) is None
    run = RunDir(tmp_path / "boom")
    run.write_config(RunConfig(dataset="mnist"))
    run.write_summary({"status": "diverged", "epochs_completed": 0})
    with pytest.raises(UserError, match="boom diverged in its first epoch and has no checkpoint: train another run"):
        predict.load_run(run.path)


def test_a_run_is_evaluated_in_the_precision_it_trained_in_where_this_device_has_it(monkeypatch):
    from deepernets.train import device

    cpu = torch.device("cpu")
    for native in (False, True):
        monkeypatch.setattr(device, "cpu_supports_bf16", lambda native=native: native)
        assert predict.evaluation_precision("fp32", cpu).name == "fp32"
        assert predict.evaluation_precision("bf16", cpu).name == ("bf16" if native else "fp32")  # never emulated
        assert predict.evaluation_precision(None, cpu).name == ("bf16" if native else "fp32")


def test_onnx_export_without_its_packages_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    # whatever of the three is installed here, onnxruntime is taken away: it must be named, in one line
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name))
    advice = r"needs (onnx, )?(onnxscript, )?onnxruntime: pip install -e '\.\[onnx\]' in the repository"
    with pytest.raises(UserError, match=advice):
        export.export_run("nowhere", "onnx")


def test_the_closing_line_counts_epochs_in_words_a_user_reads():
    summary = {"status": "completed", "final_test_acc": 58.67, "train_images_per_s": 298.2}
    one = artifacts.final_line({**summary, "epochs_completed": 1}, RunDir("runs/r"))
    two = artifacts.final_line({**summary, "epochs_completed": 2}, RunDir("runs/r"))
    assert "58.67% after 1 epoch (298.2 train images/s); results in runs/r" in one
    assert "after 2 epochs (" in two
