"""The front door: what a newcomer meets first says only what it can support, and committed files
carry no machine or session traces."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sgrnn.config import make_config
from sgrnn.report import report
from sgrnn.train import finished_note, train

ROOT = Path(__file__).resolve().parent.parent


def test_a_finished_run_relaunched_names_its_commit_and_how_to_measure_again():
    note = finished_note(Path("runs/copy/x"), {"steps": 50, "commit": "abc1234"}, "def5678")
    assert "finished at commit abc1234" in note and "now at def5678" in note and "train.resume=restart" in note
    same = finished_note(Path("runs/copy/x"), {"steps": 50, "commit": "abc1234"}, "abc1234")
    assert "now at" not in same and "train.resume=restart" in same


def test_a_tiny_runs_report_extrapolates_nothing(tmp_path):
    tiny = ["model.hidden_size=32", "task.batch_size=16", "train.max_steps=300", "train.progress=false",
            "diag.every=0", "train.threads=1", "train.log_every=10"]
    for sg in ("off", "on"):
        train(make_config("task=copy", f"sg={sg}", "T=3", *tiny), tmp_path / "runs" / "copy" / f"sg={sg},T=3,seed=0")
    text = (report(tmp_path / "runs", tmp_path / "out") / "report.md").read_text()
    assert "too short to extrapolate" in text
    assert not re.search(r"\(\d+(\.\d+)?(e[+-]?\d+)? \(extrapolated\)", text)
    assert "two cells at a time" not in text and "(1 runs)" not in text


# Words that belong to how a file was made, not to what it says; paths of one machine.
TRACES = [r"/work/", r"/home/\w", r"/root/", r"\bthis session\b", r"\bthe issue\b", r"\bnot drawn\b",
          r"\bthis task\b", r"\bthe lead\b", r"\bhelper\b", r"this session's"]


def test_no_absolute_paths_or_session_words_in_committed_files():
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True).stdout.split()
    if not files:  # not a git checkout (an sdist): nothing to check
        return
    text_like = (".md", ".py", ".yaml", ".yml", ".toml", ".sh", ".csv", ".txt", ".json")
    found = []
    for name in files:
        path = ROOT / name
        if not name.endswith(text_like) or name == "tests/test_door.py" or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for pattern in TRACES:
                if re.search(pattern, line, flags=re.IGNORECASE):
                    found.append(f"{name}:{n}: {line.strip()[:100]}")
    assert not found, "machine or session traces in committed files:\n" + "\n".join(found[:40])
