"""A user's prompts: JSONL, CSV and plain text into a PromptSet; every error names file, line and
field; the hash split; the built-in set as a PromptSet."""

import hashlib
import json
import random

import pytest

from infograv.data import (
    PromptFileError,
    PromptSet,
    builtin_prompts,
    hash_split,
    load_prompts,
    prompts as shipped,
)


def _ref_split(text, fraction=0.7):
    # the documented rule, written independently: first 8 bytes of SHA-256 as a fraction of 2^64
    u = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64
    return "train" if u < fraction else "test"


def _write(tmp_path, name, text, encoding="utf-8"):
    f = tmp_path / name
    f.write_text(text, encoding=encoding)
    return f


def test_jsonl_all_fields_metadata_and_hash_split(tmp_path):
    f = _write(tmp_path, "p.jsonl", "\n".join([
        json.dumps({"text": "The capital of Peru is", "category": "factual", "answer": "Lima",
                    "split": "test", "source": "atlas", "difficulty": 2}),
        "",
        json.dumps({"text": "Once upon a time", "category": "open"}),
        json.dumps({"text": "2 + 2 =", "answer": 4}),
    ]) + "\n")
    ps = load_prompts(f)
    assert isinstance(ps, PromptSet) and len(ps) == 3 and ps.source == str(f)
    assert ps.texts == ["The capital of Peru is", "Once upon a time", "2 + 2 ="]
    assert ps.categories == ["factual", "open", None]
    assert ps.answers == ["Lima", None, "4"]
    assert ps.split == ["test", _ref_split("Once upon a time"), _ref_split("2 + 2 =")]
    assert dict(ps[0].metadata) == {"source": "atlas", "difficulty": 2, "line": 1}
    assert ps[1].metadata["line"] == 3  # blank line 2 skipped, line numbers are the file's
    assert not ps.has_categories and ps.category_names == ("factual", "open")
    assert len(ps.train()) + len(ps.test()) == 3
    assert all(p.split == "train" for p in ps.train())


def test_csv_with_quoted_fields_extra_columns_and_a_byte_order_mark(tmp_path):
    f = _write(tmp_path, "p.csv",
               'text,category,answer,split,note\n'
               '"Hello, world",open,,train,first\n'
               '"A prompt\nover two lines",open,,,second\n'
               'The chemical symbol of gold is,factual,Au,test,\n',
               encoding="utf-8-sig")
    ps = load_prompts(f)
    assert ps.texts == ["Hello, world", "A prompt\nover two lines",
                        "The chemical symbol of gold is"]
    assert ps.categories == ["open", "open", "factual"] and ps.has_categories
    assert ps.answers == [None, None, "Au"]
    assert ps.split == ["train", _ref_split("A prompt\nover two lines"), "test"]
    assert ps[0].metadata == {"note": "first", "line": 2}
    assert ps[2].metadata["line"] == 5  # the quoted newline makes row 2 span lines 3-4


def test_plain_text_one_prompt_a_line(tmp_path):
    f = _write(tmp_path, "p.txt", "First prompt\n\n  indented prompt\r\nlast without newline")
    ps = load_prompts(f)
    assert ps.texts == ["First prompt", "  indented prompt", "last without newline"]
    assert ps.categories == [None] * 3 and ps.answers == [None] * 3
    assert ps.split == [_ref_split(t) for t in ps.texts]
    assert [p.metadata["line"] for p in ps] == [1, 3, 4]


def test_format_argument_overrides_the_suffix(tmp_path):
    f = _write(tmp_path, "prompts.data", '{"text": "x y z"}\n')
    assert load_prompts(f, format="jsonl").texts == ["x y z"]
    assert load_prompts(f, format="txt").texts == ['{"text": "x y z"}']
    with pytest.raises(PromptFileError, match="unknown suffix '.data'; use .csv, .jsonl"):
        load_prompts(f)
    with pytest.raises(ValueError, match="format: expected one of jsonl, csv, txt"):
        load_prompts(f, format="yaml")


def test_hash_split_is_deterministic_order_free_and_near_the_fraction(tmp_path):
    texts = [f"prompt number {i}" for i in range(1000)]
    a = load_prompts(_write(tmp_path, "a.txt", "\n".join(texts)))
    random.Random(0).shuffle(texts)
    b = load_prompts(_write(tmp_path, "b.txt", "\n".join(texts)))
    assert dict(zip(a.texts, a.split, strict=True)) == dict(zip(b.texts, b.split, strict=True))
    frac = sum(s == "train" for s in a.split) / len(a)
    assert abs(frac - 0.7) < 0.05  # binomial sd 0.0145: 3.4 sd
    c = load_prompts(_write(tmp_path, "c.txt", "\n".join(texts)), train_fraction=0.3)
    assert abs(sum(s == "train" for s in c.split) / len(c) - 0.3) < 0.05
    assert all(hash_split(t) == _ref_split(t) for t in texts[:50])


BAD_JSONL = [
    ('{"text": "a"}\n{"text": "b",}\n', 2, "not valid JSON"),
    ('["a", "b"]\n', 1, "expected a JSON object"),
    ('{"prompt": "a"}\n', 1, "field 'text' is missing"),
    ('{"text": ""}\n', 1, "field 'text' must be a non-empty string"),
    ('{"text": 3}\n', 1, "field 'text' must be a non-empty string"),
    ('{"text": "a", "category": 1}\n', 1, "field 'category' must be a string or null"),
    ('{"text": "a", "answer": true}\n', 1, "field 'answer' must be a string, a number"),
    ('{"text": "a", "split": "heldout"}\n', 1, "field 'split' must be 'train', 'test'"),
    ('{"text": "a"}\n{"text": "b"}\n{"text": "a"}\n', 3, "repeats the prompt of line 1"),
    ('{"text": "a"}\n' + "[" * 100000 + "\n", 2, "not valid JSON"),
]


BAD_CSV = [
    ("prompt,category\na,b\n", 1, "the header has no 'text' column"),
    ("text,text\na,b\n", 1, "repeated column"),
    ("text,category\na,b,c\n", 2, "3 fields, but the header has 2"),
    ("text,split\na,validation\n", 2, "field 'split' must be"),
    ("text\n   \nb\nb\n", 4, "repeats the prompt of line 3"),
]


@pytest.mark.parametrize("name,text,line,match", [("bad.jsonl", *c) for c in BAD_JSONL]
                         + [("bad.csv", *c) for c in BAD_CSV])
def test_record_errors_name_file_line_and_field(name, text, line, match, tmp_path):
    f = _write(tmp_path, name, text)
    with pytest.raises(PromptFileError, match=match) as err:
        load_prompts(f)
    assert str(err.value).startswith(f"{f}, line {line}: ")


def test_file_level_errors(tmp_path):
    with pytest.raises(PromptFileError, match="does not exist"):
        load_prompts(tmp_path / "missing.jsonl")
    folder = tmp_path / "dir.txt"
    folder.mkdir()
    with pytest.raises(PromptFileError, match="is a folder"):
        load_prompts(folder)
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"ok line\nbad \xff\xfe byte\n")
    with pytest.raises(PromptFileError, match=r"b\.txt, line 2: not UTF-8 text"):
        load_prompts(binary)
    nul = tmp_path / "n.txt"
    nul.write_bytes(b"fine\n\x00\x01\n")
    with pytest.raises(PromptFileError, match=r"n\.txt, line 2: contains a NUL"):
        load_prompts(nul)
    for name in ("e.txt", "e.jsonl", "e.csv"):
        with pytest.raises(PromptFileError, match="holds no prompts"):
            load_prompts(_write(tmp_path, name, "\n\n" if name != "e.csv" else "text\n"))
    with pytest.raises(ValueError, match="train_fraction: must lie in"):
        load_prompts(_write(tmp_path, "ok.txt", "a\n"), train_fraction=1.0)
    assert issubclass(PromptFileError, ValueError)


def test_builtin_prompts_are_the_shipped_set():
    ps = builtin_prompts()
    stored = shipped.load_prompts()
    assert len(ps) == len(stored) == 310
    assert ps.texts == [p.text for p in stored]
    assert ps.categories == [p.category for p in stored]
    assert ps.split == ["train" if p.split == "train" else "test" for p in stored]
    assert [p.metadata["id"] for p in ps] == [p.id for p in stored]
    assert ps.has_categories and ps.category_names == shipped.CATEGORIES
    info = ps.info()
    assert info["n_prompts"] == 310 and info["source"] == "built-in"
    assert sum(c["train"] for c in info["counts"].values()) == len(ps.train())
    # the fingerprint changes with any text
    other = PromptSet(ps.items[:-1], "x")
    assert other.sha256() != ps.sha256() and len(ps.sha256()) == 64
