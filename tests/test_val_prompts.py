"""The validation prompt set: counts, categories, fixed disjoint split, answers, pairs."""

from collections import Counter

import pytest

from infograv.data.prompts import (
    CATEGORIES,
    answer_matches,
    load_perturbations,
    load_prompts,
    prompt_set_info,
)


def test_at_least_300_prompts_in_four_categories():
    prompts = load_prompts()
    assert len(prompts) >= 300
    counts = Counter(p.category for p in prompts)
    assert set(counts) == set(CATEGORIES)
    # Each category large enough for a held-out estimate with a usable bootstrap CI.
    assert min(counts.values()) >= 50


def test_ids_and_texts_unique():
    prompts = load_prompts()
    assert len({p.id for p in prompts}) == len(prompts)
    assert len({p.text for p in prompts}) == len(prompts)
    assert all(p.text.strip() == p.text and p.text for p in prompts)


def test_split_is_disjoint_complete_and_stratified():
    train = load_prompts(split="train")
    held = load_prompts(split="heldout")
    assert {p.id for p in train}.isdisjoint({p.id for p in held})
    assert len(train) + len(held) == len(load_prompts())
    for c in CATEGORIES:
        n_tr = len(load_prompts("train", c))
        n_all = len(load_prompts(category=c))
        assert n_tr == round(0.7 * n_all)


def test_stored_file_equals_the_builder():
    # The split and generated names are fixed: rebuilding gives byte-identical content.
    from pathlib import Path

    import infograv.data.prompts._build as b

    stored = Path(b.__file__).with_name("prompts.json").read_text(encoding="utf-8")
    assert b.dumps(b.build()) == stored


def test_factual_have_answers_others_do_not():
    for p in load_prompts():
        if p.category == "factual":
            assert p.answer
        else:
            assert p.answer is None
        assert p.source


def test_perturbation_pairs_reference_prompts():
    ids = {p.id: p for p in load_prompts()}
    pairs = load_perturbations()
    assert len(pairs) >= 60
    assert {q.kind for q in pairs} == {"substitution", "paraphrase"}
    for q in pairs:
        assert q.base_id in ids and ids[q.base_id].text == q.text_a
        assert q.text_a != q.text_b
    assert len(load_perturbations("paraphrase")) + len(load_perturbations("substitution")) == len(
        pairs
    )


def test_answer_matching():
    assert answer_matches(" Paris", "Paris")
    assert answer_matches(" Bu", "Buenos Aires")
    assert not answer_matches(" ", "Paris")
    assert not answer_matches(" Lyon", "Paris")


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="split"):
        load_prompts(split="test")
    with pytest.raises(ValueError, match="category"):
        load_prompts(category="facts")
    with pytest.raises(ValueError, match="kind"):
        load_perturbations("swap")


def test_info_counts_match():
    info = prompt_set_info()
    assert info["n_prompts"] == len(load_prompts())
    assert sum(sum(v.values()) for v in info["counts"].values()) == info["n_prompts"]
