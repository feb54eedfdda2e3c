"""The offline install (docs/scale-out.md, "Offline"): scripts/wheelhouse.py's choices, and setup.sh's node mode
refusing what it cannot do before it makes anything. The install itself, end to end with --no-index on a
simulated node, is `make offline-check` (minutes: it builds virtual environments; docs/tests.md)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.tags import parse_tag

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheelhouse():
    spec = importlib.util.spec_from_file_location("wheelhouse", REPO / "scripts" / "wheelhouse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_slim_set_takes_the_locks_version_only_where_the_nodes_own_is_refused(wheelhouse, tmp_path):
    freeze = tmp_path / "have.txt"
    freeze.write_text(
        "# a node\ntransformers==5.17.0\nTokenizers==0.23.2\npeft\n"
        "numpy @ file:///build/numpy-2.5.2.whl\n-e git+https://example/x#egg=x\n"
    )
    have = wheelhouse.read_have(freeze)
    assert have == {"transformers": "5.17.0", "tokenizers": "0.23.2", "peft": None, "numpy": None}
    # the lent node's transformers is older than what the harness needs (activation_checkpointing, 5.23)
    assert not wheelhouse.node_serves(Requirement("transformers>=5.23"), have)
    assert wheelhouse.node_serves(Requirement("tokenizers<0.24.0,>=0.23.1"), have)
    assert wheelhouse.node_serves(Requirement("peft>=0.17"), have)  # no version listed: taken to serve
    assert not wheelhouse.node_serves(Requirement("trl"), have)  # not there at all
    roots = {r.name: r for r in wheelhouse.slim_roots(no_bitsandbytes=False)}
    assert str(roots["transformers"].specifier) == ">=5.23" and "bitsandbytes" in roots
    assert "torch" not in roots and "lm-eval" not in roots and "wandb" not in roots
    assert "bitsandbytes" not in {r.name for r in wheelhouse.slim_roots(no_bitsandbytes=True)}


def test_a_wheels_requirements_are_read_for_the_target_python_without_extras(wheelhouse, tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(
            "demo-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
            "Requires-Dist: always>=1\n"
            'Requires-Dist: backport; python_version < "3.12"\n'
            'Requires-Dist: devtool; extra == "dev"\n'
            'Requires-Dist: winonly; sys_platform == "win32"\n',
        )
    assert [r.name for r in wheelhouse.requires(wheel, "3.12")] == ["always"]
    assert [r.name for r in wheelhouse.requires(wheel, "3.11")] == ["always", "backport"]


def test_a_cp312_target_takes_pure_and_its_own_manylinux_wheels_only(wheelhouse):
    tags = wheelhouse.target_tags("3.12")
    ok = [
        "py3-none-any",
        "cp312-cp312-manylinux_2_28_x86_64",
        "cp312-abi3-manylinux_2_17_x86_64",
        "py3-none-manylinux_2_24_x86_64",
        "py312-none-any",
    ]
    refused = ["cp311-cp311-linux_x86_64", "cp312-cp312-macosx_11_0_arm64", "cp312-cp312-manylinux_2_28_aarch64"]
    assert all(parse_tag(t) & tags for t in ok)
    assert not any(parse_tag(t) & tags for t in refused)


def setup_sh(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_VENV": str(tmp_path / "env"), **env},
    )


def test_an_offline_setup_refuses_a_folder_that_is_no_wheelhouse_before_making_anything(tmp_path):
    (tmp_path / "wheels").mkdir()
    done = setup_sh(tmp_path, OFFLINE=str(tmp_path / "wheels"), NODE_PYTHON=sys.executable)
    assert done.returncode == 2 and "no wheelhouse there" in done.stderr and "make wheelhouse" in done.stderr
    assert not (tmp_path / "env").exists()


def test_a_node_python_without_torch_is_refused_since_torch_is_never_installed(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True, timeout=60)
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "MANIFEST.tsv").write_text("file\tname\tversion\tbytes\ntotal\t\t\t0\n")
    done = setup_sh(tmp_path, OFFLINE=str(tmp_path / "wheels"), NODE_PYTHON=str(tmp_path / "bare" / "bin" / "python"))
    assert done.returncode == 2 and "has no torch" in done.stderr and "installs none" in done.stderr
    assert not (tmp_path / "env").exists()


def test_the_gpu_check_without_bitsandbytes_leaves_qlora_out_says_so_and_validates_the_rest(capsys, monkeypatch):
    """A slim wheelhouse made with NO_BNB=1 (bitsandbytes, 43 MB, beside the rest of a 64 MiB carry) installs no
    bitsandbytes: gpu-check runs what the node can and names what it left out, instead of failing as a whole."""
    from bench.studies import gpu_check

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else find_spec(name, *a)
    )
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("bench.system.devices._driver", lambda: None)  # no GPU here, even on a GPU node
    names = [name for name, _ in gpu_check.checks()]
    assert names and not [n for n in names if n.endswith("-nf4")] and "dpo-none" in names
    assert gpu_check.main([]) == 0
    captured = capsys.readouterr()
    assert "gpu-check: leaves out QLoRA (quant=nf4): bitsandbytes is not installed." in captured.err
    assert f"({len(names)} of {len(names)} configurations validate)" in captured.out
