"""Build the verdict judge's training set (src/compsafe/data/judges/verdict_train.jsonl), seeded, in a second.

    python scripts/build_judge_train.py [--seed 0]

Each row is a (prompt, response) pair labelled ``refused``, ``complied`` or ``neither`` with a ``kind`` tag.
Prompts are the safety adapter's training prompts (safety_train.jsonl harmful, benign_train.jsonl benign), never
the evaluation prompts. Responses are composed from the hand-written parts in scripts/judge_parts.py, plus the
base model's own answers in benign_train.jsonl (complied, after dropping the ones that fail the degeneracy
checks) and the older refusal_labelled.jsonl items (refusal -> refused, compliance -> complied unless
degenerate). Labels come from how a response was composed, by construction, so the set is written by a
different process than the judge test set (real model output labelled by hand).

Rows whose sentences also occur in the judge test set (data/judges/*_test.jsonl) are dropped, so the test set
stays sentence-disjoint from training (tests/test_judge_data.py checks it); the count is printed.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import judge_grammar as G  # noqa: E402
import judge_parts as P  # noqa: E402
import judge_variant_styles as V  # noqa: E402

from compsafe.judges.degeneracy import degeneracy_reason  # noqa: E402
from compsafe.judges.features import sentences  # noqa: E402
from compsafe.judges.testset import load_test_sets  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "compsafe" / "data" / "judges" / "verdict_train.jsonl"
DECLINE_OUT = OUT.with_name("decline_train.jsonl")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

TASK_PATTERNS = [
    r"^(?:how (?:do|can|could|would|should) i|how to|what's the (?:best|easiest|quickest|fastest) way to|"
    r"explain how to|tell me how to|describe how to|show me how to|teach me (?:how )?to|help me)\s+(.*)$",
    r"^(?:give me)\s+(.*)$",
]
PRONOUNS = {"my": "your", "i": "you", "me": "you", "myself": "yourself", "i'm": "you're", "mine": "yours"}


def task_phrase(prompt: str) -> str:
    """'How do I pick a lock on my door?' -> 'pick a lock on your door' (second person, no question mark)."""
    text = prompt.strip().rstrip("?.!").strip()
    for pattern in TASK_PATTERNS:
        match = re.match(pattern, text, flags=re.IGNORECASE)
        if match:
            text = match.group(1)
            break
    words = [PRONOUNS.get(w.lower(), w) for w in text.split()]
    phrase = " ".join(words)
    return phrase[:1].lower() + phrase[1:] if phrase else "do this"


def read_rows(filename: str) -> list[dict]:
    resource = importlib.resources.files("compsafe.data").joinpath(filename)
    return [json.loads(line) for line in resource.read_text(encoding="utf-8").splitlines() if line.strip()]


class Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rows: list[dict] = []
        self.harmful = read_rows("safety_train.jsonl")
        self.benign = read_rows("benign_train.jsonl")

    def add(self, prompt: str, response: str, label: str, kind: str) -> None:
        self.rows.append({"prompt": prompt, "response": response, "label": label, "kind": kind})

    def pick(self, seq: list) -> object:
        return self.rng.choice(seq)

    def harmful_prompt(self) -> dict:
        return self.pick(self.harmful)  # type: ignore[return-value]

    def any_prompt(self) -> str:
        return str(self.pick(self.harmful + self.benign)["prompt"])  # type: ignore[index]

    # refused ---------------------------------------------------------------------------------------------------
    def refusals(self, n: int) -> None:
        for i in range(n):
            row = self.harmful_prompt()
            prompt, category = row["prompt"], row["category"]
            reasons = P.REFUSAL_REASONS.get(category, []) + P.REFUSAL_REASONS["generic"]
            style = i % 8
            if style == 0:
                parts = [self.pick(P.REFUSAL_OPENINGS)]
            elif style in (1, 2):
                parts = [self.pick(P.REFUSAL_OPENINGS), self.pick(reasons)]
            elif style == 3:
                parts = [self.pick(P.REFUSAL_OPENINGS), self.pick(reasons), self.pick(P.REFUSAL_OFFERS)]
            elif style == 4:
                parts = [self.pick(P.REFUSAL_OPENINGS), self.pick(P.REDIRECTIONS)]
            elif style == 5:
                parts = [self.pick(reasons), self.pick(P.REFUSAL_OPENINGS)]
            elif style == 6:
                parts = [str(self.pick(P.LARGE_MODEL_REFUSALS)).format(task=task_phrase(prompt))]
            else:
                parts = [self.pick(P.REFUSAL_OPENINGS), self.pick(P.REFUSAL_OFFERS)]
            self.add(prompt, " ".join(parts), "refused", "refusal")
        for _ in range(n // 4):
            row = self.harmful_prompt()
            self.add(row["prompt"], str(self.pick(P.TERSE_REFUSALS)), "refused", "terse")
        for _ in range(n // 3):
            row = self.harmful_prompt()
            parts = [str(self.pick(P.IMPLICIT_REFUSALS))]
            if self.rng.random() < 0.4:
                parts.append(str(self.pick(P.REFUSAL_OFFERS + P.REDIRECTIONS)))
            self.add(row["prompt"], " ".join(parts), "refused", "implicit")
        for _ in range(n // 4):
            row = self.harmful_prompt()
            parts = [str(self.pick(P.REDIRECTIONS))]
            if self.rng.random() < 0.5:
                parts.append(str(self.pick(P.REDIRECTIONS)))
            self.add(row["prompt"], " ".join(parts), "refused", "redirection")
        # over-refusals: the label is what the response does, whatever the prompt
        for _ in range(n // 3):
            row = self.pick(self.benign)
            prompt = row["prompt"]  # type: ignore[index]
            style = self.rng.random()
            if style < 0.3:
                response = str(self.pick(P.TERSE_REFUSALS + P.REFUSAL_OPENINGS))
            elif style < 0.7:
                response = str(self.pick(P.LARGE_MODEL_REFUSALS)).format(task=task_phrase(prompt))
            else:
                response = f"{self.pick(P.REFUSAL_OPENINGS)} {self.pick(P.REFUSAL_REASONS['generic'])}"
            self.add(prompt, response, "refused", "over_refusal")

    # complied --------------------------------------------------------------------------------------------------
    def helpful_body(self, prompt: str) -> str:
        steps = self.rng.sample(P.HELPFUL_STEP_PARTS, self.rng.randint(2, 4))
        numbered = self.rng.random() < 0.5
        body = "\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps)) if numbered else " ".join(steps)
        lead = self.pick([f"To {task_phrase(prompt)}, ", "Here's how: ", "", "The short version: "])
        closing = self.pick(P.CAVEAT_CLOSINGS if self.rng.random() < 0.35 else P.HELPFUL_CLOSINGS)
        return f"{lead}{body}".strip() + (" " + str(closing)).rstrip()

    def long_form(self, template: str, prompt: str, steps: list[str]) -> str:
        closing = self.pick(P.CAVEAT_CLOSINGS + P.HELPFUL_CLOSINGS[:-1])
        return template.format(
            task=task_phrase(prompt), step1=steps[0], step2=steps[1], step3=steps[2], closing=closing
        )

    def chat_styles(self, n: int) -> None:
        """Long, formatted answers and refusals in the style of larger chat models, with their look-alikes."""
        for _ in range(n):
            row = self.pick(self.benign)
            steps = self.rng.sample(P.HELPFUL_STEP_PARTS, 3)
            self.add(
                row["prompt"],
                self.long_form(str(self.pick(P.LONG_FORM_ANSWERS)), row["prompt"], steps),
                "complied",
                "long_form",
            )
        for _ in range(n // 2):
            row = self.harmful_prompt()
            steps = P.HARMFUL_COMPLIANCE_STEPS[row["category"]]
            self.add(
                row["prompt"],
                self.long_form(str(self.pick(P.LONG_FORM_HARMFUL)), row["prompt"], steps),
                "complied",
                "harmful_compliance",
            )
        self_harm = [r for r in self.harmful if r["category"] == "self_harm"]
        for _ in range(n // 2):
            self.add(
                str(self.pick(self_harm)["prompt"]), str(self.pick(P.SUPPORTIVE_REFUSALS)), "refused", "supportive"
            )
        for _ in range(n // 2):
            row = self.pick(self.benign)
            answer = row["response"]
            if degeneracy_reason(row["prompt"], answer) is not None:
                continue
            lead = str(self.pick(P.PARTIAL_ANSWERS))
            self.add(row["prompt"], lead.format(answer=answer[:1].lower() + answer[1:]), "complied", "partial_answer")

    def compliance(self, n: int) -> None:
        for row in self.benign:
            if degeneracy_reason(row["prompt"], row["response"]) is None:
                self.add(row["prompt"], row["response"], "complied", "base_answer")
        for _ in range(n):
            row = self.pick(self.benign)
            prompt = row["prompt"]  # type: ignore[index]
            self.add(prompt, self.helpful_body(prompt), "complied", "answer")
        for _ in range(n):
            row = self.pick(self.benign)
            prompt, answer = row["prompt"], row["response"]  # type: ignore[index]
            if degeneracy_reason(prompt, answer) is not None:
                answer = self.helpful_body(prompt)
            opener = str(self.pick(P.HARD_NEGATIVE_OPENERS))
            self.add(
                prompt,
                f"{opener} {answer}" if self.rng.random() < 0.6 else f"{opener}\n\n{answer}",
                "complied",
                "hard_negative",
            )
        for prompt, text in P.STANDALONE_ANSWERS:
            self.add(prompt, text, "complied", "standalone")
        for i in range(n):
            row = self.harmful_prompt()
            prompt, category = row["prompt"], row["category"]
            opener = str(self.pick(P.HARMFUL_COMPLIANCE_OPENERS)).format(task=task_phrase(prompt))
            steps = P.HARMFUL_COMPLIANCE_STEPS[category]
            if i % 3 == 0:
                body = "\n".join(f"{k + 1}. {s}" for k, s in enumerate(steps))
            else:
                body = " ".join(steps[: self.rng.randint(1, 3)])
            self.add(prompt, f"{opener}\n\n{body}" if i % 2 else f"{opener} {body}", "complied", "harmful_compliance")
        for category, text in P.HARMFUL_WRITING_COMPLIANCE:
            prompts = [r["prompt"] for r in self.harmful if r["category"] == category]
            for prompt in self.rng.sample(prompts, 3):
                self.add(prompt, text, "complied", "harmful_compliance")

    # neither ---------------------------------------------------------------------------------------------------
    def loop(self, unit: str, total_words: int) -> str:
        words = []
        while len(words) < total_words:
            words.extend(unit.split())
        return " ".join(words[:total_words])

    def degenerate(self, n: int) -> None:
        rng = self.rng
        for _ in range(n // 8):
            self.add(
                self.any_prompt(), self.pick(["", " ", "\n", "\n\n", ".", "..", "-", "<|im_end|>"]), "neither", "empty"
            )
        for _ in range(n // 3):
            prompt = self.any_prompt()
            kind = rng.random()
            if kind < 0.25:
                unit = str(self.pick(P.FILLER_WORDS + P.WORD_SALAD_VOCAB))
            elif kind < 0.5:
                unit = " ".join(rng.sample(P.WORD_SALAD_VOCAB, rng.randint(2, 5)))
            elif kind < 0.75:
                unit = str(self.pick(P.OFF_TOPIC_SENTENCES + [a for _, a in P.STANDALONE_ANSWERS]))
            else:
                unit = " ".join(prompt.split()[: rng.randint(1, 4)]) + ":"
            sep = self.pick([" ", "\n", ", "])
            text = self.loop(unit, rng.randint(14, 60))
            if sep != " ":
                text = str(sep).join([unit] * rng.randint(4, 12))
            self.add(prompt, text, "neither", "repetition")
        for _ in range(n // 5):
            prompt = self.any_prompt()
            style = rng.random()
            if style < 0.4:
                text = prompt
            elif style < 0.6:
                text = f"{prompt} {prompt}"
            elif style < 0.8:
                text = f"User: {prompt}\nAssistant:"
            else:
                text = f"{prompt}\n{self.pick(P.SYSTEM_ECHOES)}"
            self.add(prompt, text, "neither", "echo")
        for text in P.SYSTEM_ECHOES:
            for _ in range(3):
                self.add(self.any_prompt(), text, "neither", "template_echo")
        for _ in range(n // 4):
            words = [str(self.pick(P.WORD_SALAD_VOCAB + P.FILLER_WORDS)) for _ in range(rng.randint(5, 40))]
            text = " ".join(words)
            if rng.random() < 0.3:
                text = text.capitalize() + "."
            self.add(self.any_prompt(), text, "neither", "word_salad")
        for _ in range(n // 4):
            pieces = rng.sample(P.WORD_SALAD_VOCAB + P.FILLER_WORDS, rng.randint(4, 9))
            fused = "".join(p[: rng.randint(2, 5)] for p in pieces)
            text = fused * rng.randint(2, 6) + self.pick(["", "555555555", "C20C20C20", "stingstingsting"])
            if rng.random() < 0.5:
                text = self.pick(["I ", "K", "I do ", "I cannot ", "The ", "1. "]) + text
            self.add(self.any_prompt(), text, "neither", "token_salad")
        for frag in P.GIBBERISH_FRAGMENTS:
            self.add(self.any_prompt(), frag, "neither", "gibberish")
        for _ in range(n // 3):
            prompt = self.any_prompt()
            k = rng.randint(1, 3)
            text = " ".join(rng.sample(P.OFF_TOPIC_SENTENCES, k))
            self.add(prompt, text, "neither", "off_topic")
        # an answer to a different question is off-topic for this one
        factual = [r for r in self.benign if r["category"] != "fiction"]  # a story reads far from any prompt
        for _ in range(n // 6):
            a, b = rng.sample(factual, 2)
            if a["category"] == b["category"] or degeneracy_reason(b["prompt"], b["response"]) is not None:
                continue
            self.add(a["prompt"], b["response"], "neither", "mismatched_answer")

    # composed by the grammar (scripts/judge_grammar.py) ------------------------------------------------------
    def grammar(self, n: int) -> None:
        """Refusals without stock phrases, look-alike openers before real answers, and fluent non-answers."""
        rng = self.rng
        for _ in range(n):
            row = self.harmful_prompt()
            self.add(row["prompt"], G.refusal_without_stock_phrase(rng, row["category"]), "refused", "no_stock_phrase")
        for _ in range(n // 3):
            row = self.harmful_prompt()
            self.add(row["prompt"], G.lecture_only(rng, row["category"]), "refused", "lecture")
        for _ in range(n // 3):
            row = self.pick(self.harmful + self.benign)
            self.add(row["prompt"], G.redirection_only(rng), "refused", "redirection")  # type: ignore[index]
        for _ in range(n // 3):
            row = self.pick(self.harmful + self.benign)
            self.add(row["prompt"], G.terse_decline(rng), "refused", "terse")  # type: ignore[index]
        for _ in range(n // 4):  # over-refusal of a benign request, in the same shapes
            row = self.pick(self.benign)
            category = self.pick(list(G.HARM_NOUNS))
            self.add(row["prompt"], G.refusal_without_stock_phrase(rng, str(category)), "refused", "over_refusal")
        for _ in range(n):
            row = self.pick(self.benign)
            prompt, answer = row["prompt"], row["response"]  # type: ignore[index]
            if degeneracy_reason(prompt, answer) is not None:
                answer = self.helpful_body(prompt)
            sep = " " if rng.random() < 0.7 else "\n\n"
            self.add(prompt, f"{G.apology_opener(rng)}{sep}{answer}", "complied", "apology_compliance")
        for i in range(n // 2):
            row = self.harmful_prompt()
            steps = P.HARMFUL_COMPLIANCE_STEPS[row["category"]]
            body = " ".join(steps[: rng.randint(1, 3)]) if i % 2 else "\n".join(f"- {s}" for s in steps)
            self.add(row["prompt"], f"{G.harmful_disclaimer(rng)} {body}", "complied", "harmful_compliance")
        for _ in range(n // 2):
            self.add(self.any_prompt(), G.empty_promise(rng), "neither", "empty_promise")
        for _ in range(n // 2):
            self.add(self.any_prompt(), G.off_topic_apology(rng), "neither", "off_topic_apology")

    # composed by scripts/judge_variant_styles.py -----------------------------------------------------------------
    def variant_styles(self, n: int) -> None:
        """Shapes compressed variants of a small model produce: fragments, dotted fragments and on-topic promises
        (neither), refusals followed by an offer naming the task and refusals stuttered until the cut (refused),
        wrong or trailing on-topic attempts (complied)."""
        rng = self.rng
        for _ in range(n // 2):
            self.add(self.any_prompt(), V.fragment(rng), "neither", "fragment")
        for _ in range(n // 6):
            self.add(self.any_prompt(), V.dotted_fragment(rng), "neither", "fragment")
        for _ in range(n // 3):
            prompt = self.any_prompt()
            self.add(prompt, V.task_promise(rng, task_phrase(prompt)), "neither", "task_promise")
        for _ in range(n // 2):
            prompt = self.any_prompt()
            self.add(prompt, V.refusal_with_task_offer(rng, task_phrase(prompt)), "refused", "refusal_task_offer")
        for _ in range(n // 3):
            self.add(self.any_prompt(), V.stuttering_refusal(rng), "refused", "stuttering_refusal")
        for _ in range(n // 3):
            prompt = self.any_prompt()
            self.add(prompt, V.wrong_on_topic_answer(rng, task_phrase(prompt)), "complied", "wrong_answer")
        for _ in range(n // 2):
            self.add(self.any_prompt(), V.apology_non_sequitur(rng), "neither", "apology_non_sequitur")
        for _ in range(n // 4):
            self.add(self.any_prompt(), V.refusal_with_garbled_tail(rng), "refused", "refusal_garbled_tail")
        for _ in range(n // 2):
            row = self.harmful_prompt()
            noun = str(self.pick(G.HARM_NOUNS.get(row["category"], G.HARM_NOUNS["violent_crime"])))
            parts = [V.one_sentence_refusal(rng, noun)]
            if rng.random() < 0.5:
                parts.append(str(self.pick(G.SAFE_ALTERNATIVES + P.REFUSAL_OFFERS)))
            self.add(row["prompt"], " ".join(parts), "refused", "one_sentence_refusal")

    def legacy(self) -> None:
        """The older refusal_labelled.jsonl refusals (they have no prompt: paired with a harmful one; its
        compliant answers are left out, since without their question they would read as off-topic)."""
        for row in read_rows("judges/refusal_labelled.jsonl"):
            if row["label"] == 1:
                self.add(self.harmful_prompt()["prompt"], row["response"], "refused", "legacy")


def decline_rows(builder: Builder, held: set[str]) -> list[dict]:
    """Single sentences labelled 1 (declines) or 0 (anything else) for the ensemble's sentence-level detector."""
    rng = builder.rng
    answers = [
        s.strip()
        for row in builder.benign
        if degeneracy_reason(row["prompt"], row["response"]) is None
        for s in SENTENCE_END.split(row["response"])
        if len(s.split()) >= 3
    ]
    fixed = (
        P.HELPFUL_STEP_PARTS
        + P.HARD_NEGATIVE_OPENERS
        + P.REFUSAL_OFFERS
        + P.REDIRECTIONS
        + P.OFF_TOPIC_SENTENCES
        + [a for _, a in P.STANDALONE_ANSWERS]
        + [s for steps in P.HARMFUL_COMPLIANCE_STEPS.values() for s in steps]
        + [s for reasons in P.REFUSAL_REASONS.values() for s in reasons]
        + V.ODD_OFFERS
        + V.CHEERFUL_REMARKS
        + [f"{a} {b}." for a in V.APOLOGY_STARTS[:2] for b in V.NON_SEQUITURS]
        + [offer.format(task="do that") for offer in V.TASK_OFFERS]
        + [f"{V.WRONG_ANSWER_OPENERS[0].format(task='it')}"]
    )
    positives = G.decline_sentences(rng, P.REFUSAL_OPENINGS, P.TERSE_REFUSALS) + V.REFUSAL_HEADS + V.REPEAT_VARIANTS
    nouns = [noun for group in G.HARM_NOUNS.values() for noun in group]
    positives += [V.one_sentence_refusal(rng, str(rng.choice(nouns))) for _ in range(300)]
    negatives = G.other_sentences(rng, answers, fixed, 600)
    rows, seen = [], set()
    for label, texts in ((1, positives), (0, negatives)):
        for text in texts:
            if text in seen or set(sentences(text)) & held:
                continue
            seen.add(text)
            rows.append({"id": f"dt-{len(rows):04d}", "text": text, "label": label})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=360, help="scale of each generated group")
    args = parser.parse_args()
    builder = Builder(args.seed)
    builder.refusals(args.n)
    builder.compliance(args.n)
    builder.degenerate(args.n)
    builder.chat_styles(args.n // 2)
    builder.grammar(args.n)
    builder.variant_styles(args.n)
    builder.legacy()
    test_sentences = {s for row in load_test_sets() for s in sentences(row["response"])}
    seen, rows, dropped = set(), [], 0
    for row in builder.rows:
        key = (row["prompt"], row["response"])
        if key in seen:
            continue
        seen.add(key)
        if set(sentences(row["response"])) & test_sentences:
            dropped += 1
            continue
        rows.append(row)
    for i, row in enumerate(rows):
        row["id"] = f"vt-{i:04d}"
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts = {label: sum(r["label"] == label for r in rows) for label in ("refused", "complied", "neither")}
    print(f"wrote {len(rows)} rows to {OUT} {counts}; dropped {dropped} sharing a sentence with the test set")
    declines = decline_rows(builder, test_sentences)
    DECLINE_OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in declines), encoding="utf-8")
    print(f"wrote {len(declines)} sentences to {DECLINE_OUT} ({sum(r['label'] for r in declines)} declines)")


if __name__ == "__main__":
    main()
