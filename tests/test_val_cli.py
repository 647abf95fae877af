"""The options of `infograv validate` (interface of infograv.experiments._validate_cli)."""

import argparse

import pytest

from infograv.experiments import ValidationSettings
from infograv.experiments._validate_cli import _settings, add_validate_arguments


def _parser():
    p = argparse.ArgumentParser(prog="infograv validate")
    add_validate_arguments(p)
    return p


def test_every_option_has_help_and_the_help_ends_with_an_example():
    p = _parser()
    for action in p._actions:
        assert action.help, action.option_strings
    for flag in ("--prompts", "--model", "--kernel", "--families", "--no-cache", "--quick",
                 "--out", "--quiet", "--seed", "--bootstrap", "--steps", "--fit-prompts"):
        assert flag in p.format_help()
    assert p.format_help().rstrip().endswith("--quick --out my_study")


def test_options_map_onto_the_settings():
    a = _parser().parse_args(["--quick", "--families", "harmonic,plummer", "--bootstrap", "100",
                              "--steps", "7", "--seed", "3", "--kernel", "a.toml",
                              "--kernel", "b.toml", "--no-cache", "--fit-prompts", "64"])
    s = _settings(a)
    assert s.max_fit_prompts == 64
    q = ValidationSettings.quick()
    assert (s.families, s.n_boot, s.max_steps, s.seed) == (("harmonic", "plummer"), 100, 7, 3)
    assert s.max_train == q.max_train  # the rest of the quick settings is kept
    assert [str(k) for k in a.kernel] == ["a.toml", "b.toml"] and a.no_cache
    d = _settings(_parser().parse_args([]))
    assert d == ValidationSettings()  # no options: the full defaults


@pytest.mark.parametrize("argv, message", [
    (["--families", "coulomb"], "unknown kernel family coulomb"),
    (["--steps", "0"], "positive integer"),
    (["--bootstrap", "many"], "positive integer"),
    (["--fit-prompts", "-3"], "positive integer"),
    (["--fit-prompts", "1"], "integer >= 2"),
])
def test_bad_options_name_what_is_valid(argv, message, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
    assert message in capsys.readouterr().err
