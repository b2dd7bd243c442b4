"""``vhakit train-vha``: trains the tiny preset a few steps on prior_pool, prints MPVE on both test
sets, refuses to overwrite a run silently, and --resume continues the same run."""
from __future__ import annotations

import json
import re

from vhakit.cli import main
from vhakit.training.trainer import load_checkpoint


def test_train_vha_cli_runs_resumes_and_reports_mpve(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train-vha", "--preset", "tiny", "--out", str(out)]
    assert main([*args, "--max-steps", "3", "--set", "lr=5e-4", "--set", "task.jitter_m=0.01"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "trained to step 3" in text
    # the progress bar counts the run's real budget (3 steps: one partial epoch), not epochs; a
    # fast machine may finish before tqdm's refresh interval, so any render of the bar counts
    assert re.search(r"epoch 1/1:.*\b[0-3]/3\b", captured.err), captured.err[-500:]
    mpve = {m[0]: float(m[1]) for m in re.findall(r"MPVE (\w+) test \(\d+ frames\): ([\d.]+) mm", text)}
    assert set(mpve) == {"prior_pool", "real_mocap"}, text
    assert all(0 < v < 2000 for v in mpve.values()), mpve
    ck = load_checkpoint(out / "last.pt")
    assert ck["position"]["step"] == 3
    assert ck["run_config"]["train"]["lr"] == 5e-4 and ck["run_config"]["task_config"]["jitter_m"] == 0.01

    assert main([*args, "--max-steps", "3"]) == 1  # an existing run is never overwritten silently
    assert "--resume" in capsys.readouterr().err

    # --compile reaches the config (auto: eager on this CPU) and may change on resume
    sets = ["--set", "lr=5e-4", "--set", "task.jitter_m=0.01"]
    assert main([*args, "--resume", "--max-steps", "5"]) == 1  # resumed with other settings
    assert "lr" in capsys.readouterr().err
    assert main([*args, *sets, "--resume", "--max-steps", "5", "--compile", "auto"]) == 0
    assert "trained to step 5" in capsys.readouterr().out
    ck = load_checkpoint(out / "last.pt")
    assert ck["position"]["step"] == 5 and ck["run_config"]["train"]["compile"] == "auto"
    rows = json.loads((out / "metrics.json").read_text())["history"]
    assert [r["step"] for r in rows if r["split"] == "train"] == [5]  # tiny logs every 5 steps


def test_train_flags_reject_values_that_would_not_mean_what_they_say(capsys):
    import pytest

    from vhakit.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train-vha", "--max-steps", "1"]).max_steps == 1
    for value, message in (("0", "must be at least 1, got 0"), ("-3", "must be at least 1, got -3"),
                           ("2.5", "expected a whole number of steps, got '2.5'")):
        with pytest.raises(SystemExit) as exit_:  # argparse: usage and the message, exit 2
            parser.parse_args(["train-vha", "--max-steps", value])
        assert exit_.value.code == 2
        assert f"argument --max-steps: {message}" in capsys.readouterr().err
    needs = {"train-vha": [], "train-bcp": ["--data", "d", "--vha", "v"],
             "train-baseline": ["--data", "d"]}
    for command, required in needs.items():
        with pytest.raises(SystemExit):
            parser.parse_args([command, *required, "--resume", "--overwrite"])
        assert "--overwrite: not allowed with argument --resume" in capsys.readouterr().err


def test_set_overrides_are_checked_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train-vha", "--preset", "tiny", "--out", str(out)]
    for extra, message in ((["--set", "epoch=3"], "did you mean"),
                           (["--set", "lr=fast"], "expected float"),
                           (["--set", "max_steps=4", "--max-steps", "4"], "both given")):
        assert main([*base, *extra]) == 1
        assert message in capsys.readouterr().err
    assert not out.exists()  # nothing trained, nothing written
