"""Command-line config overrides (``--set FIELD=VALUE``): parsing, typing and errors."""
import pytest

from vhakit.config import RUN_CLASSES, bcp_configs, parse_overrides, vha_configs


def test_values_take_the_type_of_the_field_they_set():
    got = parse_overrides(["epochs=20", "lr=3e-4", "train.compile=on", "channels=16,32",
                           "channels_last=true"], RUN_CLASSES["vha"])
    assert got == {"epochs": 20, "lr": 3e-4, "train.compile": "on", "channels": (16, 32),
                   "channels_last": True}
    assert type(got["epochs"]) is int and type(got["lr"]) is float


def test_overrides_reach_the_run_config():
    cfg = vha_configs("tiny", **parse_overrides(["epochs=7", "lr=5e-4"], RUN_CLASSES["vha"]))
    assert (cfg.train.epochs, cfg.train.lr) == (7, 5e-4)
    cfg = bcp_configs("tiny", **parse_overrides(["code_weight=3.5", "batch_size=1"],
                                                 RUN_CLASSES["bcp"]))
    assert (cfg.task.code_weight, cfg.train.batch_size) == (3.5, 1)


@pytest.mark.parametrize("item, words", [
    ("epochs", "FIELD=VALUE"),
    ("epoch=3", "did you mean"),
    ("epochs=three", "expected int"),
    ("channels_last=maybe", "expected bool"),
])
def test_bad_overrides_say_what_to_write(item, words):
    with pytest.raises(ValueError, match=words):
        parse_overrides([item], RUN_CLASSES["vha"])
