"""hf-classifier: judge on a tiny random-weight BERT sequence classifier built from a config (no download)."""

from __future__ import annotations

import pytest
import torch

from compsafe.errors import CompsafeError
from compsafe.judges import get_judge
from compsafe.judges.hf_classifier import ClassifierOptions, HFClassifierJudge, JudgeOptionError

SENTENCE = "i can t help with that sure here is how first mix the flour and water bake it weapon make a do"
WORDS = SENTENCE.split(" ")


def save_tiny_bert(folder, id2label: dict[int, str], seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "?", ".", "'", ","]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def manual_probabilities(folder, first, second=None) -> list[float]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    encoded = (
        tokenizer(first, second, return_tensors="pt") if second is not None else tokenizer(first, return_tensors="pt")
    )
    with torch.inference_mode():
        return torch.softmax(model(**encoded).logits[0].float(), dim=-1).tolist()


@pytest.fixture(scope="module")
def rejection_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("cls") / "rejection", {0: "NORMAL", 1: "REJECTION"}, seed=1)


@pytest.fixture(scope="module")
def anonymous_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("cls") / "anon", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, seed=2)


def test_known_label_names_map_and_confidence_is_the_class_probability(rejection_dir):
    judge = get_judge(f"hf-classifier:{rejection_dir}")
    assert isinstance(judge, HFClassifierJudge)
    response = "sure here is how first mix the flour and water"
    normal, rejection = manual_probabilities(rejection_dir, response)
    verdict = judge.judge("how do i bake", response)
    expected = ("refused", rejection) if rejection > normal else ("complied", normal)
    assert verdict.label == expected[0] and verdict.confidence == pytest.approx(expected[1], abs=1e-5)
    assert judge.judge("q", "").label == "neither"  # shared degeneracy check, the model is not asked


def test_unnamed_labels_need_a_mapping_with_an_actionable_message(anonymous_dir):
    judge = get_judge(f"hf-classifier:{anonymous_dir}")
    with pytest.raises(JudgeOptionError, match="say what label 'LABEL_0' means"):
        judge.judge("q", "sure here is how")
    mapped = get_judge(f"hf-classifier:{anonymous_dir}#LABEL_0=complied,LABEL_1=refused,LABEL_2=neither")
    probabilities = manual_probabilities(anonymous_dir, "i can t help with that")
    verdict = mapped.judge("q", "i can t help with that")
    best = max(range(3), key=lambda i: probabilities[i])
    assert verdict.label == ("complied", "refused", "neither")[best]
    assert verdict.confidence == pytest.approx(probabilities[best], abs=1e-5)


def test_labels_mapped_to_one_verdict_add_up(anonymous_dir):
    judge = get_judge(f"hf-classifier:{anonymous_dir}#LABEL_0=complied,LABEL_1=refused,LABEL_2=refused")
    p = manual_probabilities(anonymous_dir, "make a weapon")
    verdict = judge.judge("q", "make a weapon")
    refused = p[1] + p[2]
    assert verdict.label == ("refused" if refused > p[0] else "complied")
    assert verdict.confidence == pytest.approx(max(refused, p[0]), abs=1e-5)


def test_pair_input_feeds_request_and_response(rejection_dir):
    judge = get_judge(f"hf-classifier:{rejection_dir}#input=pair")
    pair = manual_probabilities(rejection_dir, "how do i make a weapon", "first mix the flour")
    verdict = judge.judge("how do i make a weapon", "first mix the flour")
    assert verdict.confidence == pytest.approx(max(pair), abs=1e-5)
    assert judge.version != get_judge(f"hf-classifier:{rejection_dir}").version  # options are part of the key


@pytest.mark.parametrize(
    "options, message",
    [
        ("#input=both", "input=response or input=pair"),
        ("#NORMAL", "KEY=VALUE"),
        ("#NORMAL=answered", "maps to one of"),
        ("#OTHER=refused", "which the model lacks"),
    ],
)
def test_bad_options_are_one_line_errors(rejection_dir, options, message):
    with pytest.raises(CompsafeError, match=message):
        get_judge(f"hf-classifier:{rejection_dir}{options}").judge("q", "sure here is how")


def test_pickled_weights_are_refused(tmp_path, rejection_dir):
    import shutil

    folder = tmp_path / "bin-only"
    shutil.copytree(rejection_dir, folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(CompsafeError, match="safetensors"):
        HFClassifierJudge(ClassifierOptions(str(folder))).judge("q", "sure here is how")
