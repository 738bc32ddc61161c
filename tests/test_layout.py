import pytest

from entrypoint.formats.layout import STEP_OBJECTS, Layout, chunk_dir, name_problem, result_of, step_of


def test_keys() -> None:
    layout = Layout("artifacts", "run-1", "train", "main")
    assert layout.result_key("model") == "artifacts/run-1/train/model.tgz"
    assert layout.log_archive_key() == "artifacts/run-1/train/main-log.tgz"
    assert layout.chunk_key(7) == "artifacts/run-1/train/logs/main/00000007.log"
    assert Layout("", "r", "t", "s").result_key("x") == "r/t/x.tgz"
    assert Layout("a/b", "r", "t", "s").result_key("x") == "a/b/r/t/x.tgz"


def test_chunk_keys_sort_in_log_order() -> None:
    layout = Layout("artifacts", "r", "t", "main")
    keys = [layout.chunk_key(i) for i in (0, 1, 2, 9, 10, 99, 100, 12345)]
    assert sorted(keys) == keys


@pytest.mark.parametrize(
    "bad",
    ["", ".", "..", "a/b", "a\\b", "x\x00y", "tab\there", "new\nline", "\uff0f", "\u2024\u2024", "x" * 256],
)
def test_bad_names_rejected(bad: str) -> None:
    assert name_problem(bad) is not None
    with pytest.raises(ValueError):
        Layout("artifacts", bad, "t", "main")
    with pytest.raises(ValueError):
        Layout("artifacts", "r", "t", "main").result_key(bad)


@pytest.mark.parametrize("good", ["model", "accuracy.json", "résumé", "模型", "a-b_c.d", "..x", "x.."])
def test_good_names_accepted(good: str) -> None:
    assert name_problem(good) is None


@pytest.mark.parametrize(
    ("name", "step", "result"),
    [
        ("build-log.tgz", "build", None),
        ("build-summary.json", "build", None),
        ("my-step-manifest.json", "my-step", None),
        ("digest.tgz", None, "digest"),
        ("log.tgz", None, "log"),  # a result called "log", not a step with no name
        ("-log.tgz", None, "-log"),
        ("notes.txt", None, None),
    ],
)
def test_the_reader_parses_names_with_the_writers_words(name: str, step: str | None, result: str | None) -> None:
    assert step_of(name) == step
    assert result_of(name) == result
    layout = Layout("p", "run", "task", step or "s")
    if step is not None:
        assert layout.task_prefix + name in {layout.step_object_key(w) for w in STEP_OBJECTS}
    if result is not None and name_problem(result) is None:
        assert layout.result_key(result) == layout.task_prefix + name
    assert layout.chunk_prefix() == layout.task_prefix + chunk_dir(layout.step)
