"""``compsafe attack``: a differential GCG search for suffixes on the quantization boundary.

``layout`` lays a request out in token ids exactly as ``refusal_margins`` scores it; ``scoring`` computes many
candidates' margins (and the one-hot gradient) from one cached prefix; ``gcg`` is the search step and
objective; ``differential`` runs the search over requests with per-item records in the store.
"""
