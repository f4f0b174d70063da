"""A crafted pickle that would run code on load is refused, with one clear line, and its code never runs."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from poseadapt.cli.main import main
from poseadapt.errors import PoseAdaptError
from poseadapt.interop.safe_load import load_state_dict_file


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _craft(tmp_path, kind: str):
    marker = tmp_path / "PWNED"
    path = tmp_path / f"evil_{kind}.pth"
    payload = _Payload(str(marker))
    if kind == "torch":  # a zip-format torch checkpoint, weights next to the payload
        torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": payload}, path)
    else:  # a legacy raw pickle
        path.write_bytes(pickle.dumps({"state_dict": payload}, protocol=2))
    return path, marker


@pytest.mark.parametrize("kind", ["torch", "raw"])
def test_malicious_pickle_is_refused(tmp_path, kind):
    path, marker = _craft(tmp_path, kind)
    with pytest.raises(PoseAdaptError) as info:
        load_state_dict_file(path)
    message = str(info.value)
    assert message.startswith(f"refusing to unpickle {path}") and "\n" not in message
    assert "system" in message  # names the offending global (posix.system / nt.system)
    assert not marker.exists()


def test_cli_refuses_with_one_line(tmp_path, capsys):
    path, marker = _craft(tmp_path, "torch")
    with pytest.raises(SystemExit) as info:
        main(["import", "vitpose", str(path), "--out", str(tmp_path / "o.safetensors")])
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to unpickle")
    assert not marker.exists() and not (tmp_path / "o.safetensors").exists()


def test_allow_listed_metadata_loads(tmp_path):
    import numpy as np

    torch.save(
        {"state_dict": {"w": torch.ones(2)}, "meta": {"iter": np.int64(3), "lr": np.float32(0.1)}}, tmp_path / "ok.pth"
    )
    tensors, extra = load_state_dict_file(tmp_path / "ok.pth")
    assert torch.equal(tensors["w"], torch.ones(2)) and int(extra["meta"]["iter"]) == 3
