"""Model-driving diagnosis: where a recipe hurts and what to keep (``compsafe sensitivity`` / ``mitigate``).

Unlike ``analysis/`` (pure statistics over records), these modules drive a loaded model: they build variants
with ``compress.applied``, ablate heads, and measure with ``signals.SignalProbe`` on the run's own primitives,
keeping every measurement as per-item records in the ``ResultStore`` when one is given, so a scan resumes.

* :mod:`.signals` -- refusal margin, fast/judged refusal rate and perplexity of one model state.
* :mod:`.sensitivity` -- per-module weight/output error and the one-block-at-a-time behaviour scan.
* :mod:`.heads` -- attention-head ablation and the attribution screen.
* :mod:`.mitigate` -- the greedy ``+keep8=`` search under a bit budget.
"""
