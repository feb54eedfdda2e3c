"""Damaged cache entries and undecodable or unparsable input, without training: what is caught, and
that every message names the file (and line) and what to do."""

from __future__ import annotations

import json
import logging

import pytest

from bench import BenchError
from bench.system import cache, files


@pytest.fixture
def entries(tmp_path):
    """A published file entry and a published folder entry."""
    data = tmp_path / "data" / "arithmetic-abc.json"
    cache.publish_json(data, {"pairs": [[1, 2]] * 50})
    tmp = tmp_path / "models" / "m.tmp"
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text('{"hidden_size": 576}')
    (tmp / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    cache.replace_dir(tmp, tmp_path / "models" / "m")
    return data, tmp_path / "models" / "m"


def test_published_entries_check_out_and_are_listed(entries, tmp_path):
    data, model = entries
    assert cache.problem(data) is None and cache.problem(model, full=True) is None
    assert cache.entries(tmp_path) == sorted([data, model])


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda f: f.write_bytes(f.read_bytes()[:100]), "is 100 bytes, its manifest says 10,240 (truncated)"),
        (lambda f: f.write_bytes(b""), "is 0 bytes, its manifest says 10,240 (emptied)"),
        (lambda f: f.unlink(), "model.safetensors was removed"),
        (lambda f: f.write_bytes(bytes(10240)), "content differs from its manifest"),
    ],
)
def test_each_kind_of_damage_to_a_folder_entry_is_named(entries, damage, expected):
    _, model = entries
    damage(model / "model.safetensors")
    assert expected in cache.problem(model)


def test_a_file_entry_truncated_emptied_or_removed_is_named(entries):
    data, _ = entries
    size = data.stat().st_size
    data.write_text(data.read_text()[:20])
    assert f"is 20 bytes, its manifest says {size:,} (truncated)" in cache.problem(data)
    data.write_text("")
    assert "(emptied)" in cache.problem(data)
    data.unlink()
    assert cache.problem(data) == "it is missing"


def test_an_entry_without_manifest_is_not_trusted(tmp_path):
    old = tmp_path / "old.json"
    old.write_text("{}")
    assert "has no manifest" in cache.problem(old)


def test_a_damaged_entry_is_removed_for_rebuilding_with_a_warning(entries, caplog):
    data, model = entries
    (model / "config.json").write_text("")
    with caplog.at_level(logging.WARNING, logger="bench.system.cache"):
        assert cache.usable(model, "converted model") is False
    assert f"cache: converted model {model} is damaged (config.json is 0 bytes" in caplog.text
    assert not model.exists()  # the caller rebuilds it, still under its lock
    assert cache.usable(data, "offline data") is True
    assert cache.usable(data.with_name("never-built.json"), "offline data") is False  # nothing to warn about


def test_an_entry_that_cannot_be_removed_is_refused_with_the_path_to_delete(entries, monkeypatch):
    data, _ = entries
    data.write_text("")

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache, "remove", refuse)  # as on a cache shared read-only between users
    with pytest.raises(BenchError, match=r"damaged \(.*\(emptied\)\) and could not be removed") as err:
        cache.usable(data, "offline data")
    assert f"Delete {data}" in str(err.value)


def test_the_verify_command_lists_damaged_entries(entries, tmp_path, capsys):
    data, model = entries
    with (model / "model.safetensors").open("r+b") as f:  # same size, other bytes: only a full hash sees it
        f.write(b"\xff")
    assert cache.main(["verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"DAMAGED {model}: model.safetensors's content differs" in out and f"ok      {data}" in out


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    cache.write_json(target, {"status": "success"})
    with pytest.raises(TypeError):
        cache.write_text(target, object())  # fails inside the write, as a full disk does
    assert json.loads(target.read_text()) == {"status": "success"} and list(tmp_path.iterdir()) == [target]


def test_an_undecodable_byte_is_named_with_file_line_and_column(tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_bytes(b'{"question": "a"}\n\n{"question": "caf\xe9"}\n')
    with pytest.raises(BenchError) as err:
        list(files.iter_jsonl(bad))
    assert str(err.value).startswith(f"{bad}:3:18: byte 0xe9 is not UTF-8") and "iconv" in str(err.value)


def test_gsm8k_data_that_is_not_utf8_or_not_json_is_named_with_its_line(compose, tmp_path):
    from bench.tasks import load_task

    good = '{"question": "1 + 1?", "answer": "2\\n#### 2"}\n'
    (tmp_path / "test.jsonl").write_text(good * 4)
    (tmp_path / "train.jsonl").write_bytes((good * 2).encode() + b'{"question": "\xe9", "answer": "#### 1"}\n')
    cfg = compose("task=gsm8k", f"task.data_dir={tmp_path}", "task.num_validation=1")
    with pytest.raises(BenchError, match=rf"{tmp_path / 'train.jsonl'}:3:15: byte 0xe9 is not UTF-8"):
        load_task(cfg.task)
    (tmp_path / "train.jsonl").write_text(good * 2 + '{"question": "q", "answer": \n')
    with pytest.raises(BenchError, match=rf"{tmp_path / 'train.jsonl'}:3:\d+: not valid JSON"):
        load_task(cfg.task)


def test_a_broken_tuned_file_is_named_with_its_line(compose, tmp_path):
    from bench.config.compose import apply_tuned

    tuned = tmp_path / "tuned.yaml"
    tuned.write_text("tuned:\n  dpo: {train.args.learning_rate: 1.0e-4\n")
    with pytest.raises(BenchError, match=rf"{tuned}:3:1: not valid YAML"):
        apply_tuned(compose("method=dpo", f"tuned={tuned}"))


def test_an_unreadable_run_record_is_named_with_its_line_in_the_report(tmp_path):
    from bench.report.summary import load_runs

    (tmp_path / "0_dpo_seed0").mkdir()
    (tmp_path / "0_dpo_seed0" / "metrics.json").write_text('{\n  "status": "success",\n  "method": \n')
    runs = load_runs([tmp_path])
    assert runs["status"].tolist() == ["unreadable"]
    assert f"{tmp_path / '0_dpo_seed0' / 'metrics.json'}:4:1: not valid JSON" in runs["error"].iloc[0]
