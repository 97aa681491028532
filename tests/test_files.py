import errno
import os
import tempfile

import pytest

from keras_seresnet.files import atomic_path, write_json, write_text


def test_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out" / "notes.txt"
    write_text(path, "first")
    write_text(path, "second")
    assert path.read_text() == "second" and os.listdir(tmp_path / "out") == ["notes.txt"]
    write_json(tmp_path / "v.json", {"b": 1, "a": [2]})
    assert (tmp_path / "v.json").read_text() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'


def test_a_failing_writer_keeps_the_previous_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("kept")
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("writer failed")
    assert path.read_text() == "kept" and os.listdir(tmp_path) == ["notes.txt"]


def test_a_folder_where_the_file_goes_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "predictions.csv").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        write_text(tmp_path / "predictions.csv", "x")
    assert info.value.filename == str(tmp_path / "predictions.csv")
    assert os.listdir(tmp_path) == ["predictions.csv"]


def test_a_file_where_a_folder_goes_is_named(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError) as info:
        write_text(tmp_path / "afile" / "notes.txt", "x")
    assert info.value.filename == str(tmp_path / "afile")


def test_an_unwritable_folder_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    def read_only(**kwargs):
        raise OSError(
            errno.EROFS,
            "Read-only file system",
            os.path.join(kwargs["dir"], kwargs["prefix"] + "x1y2"),
        )

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)  # as on a read-only mount
    with pytest.raises(OSError) as info:
        write_text(tmp_path / "predictions.csv", "x")
    assert (info.value.errno, info.value.filename) == (
        errno.EROFS,
        str(tmp_path / "predictions.csv"),
    )
    assert info.value.strerror == "Read-only file system"
