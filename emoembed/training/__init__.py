"""Training: everything that fits weights, and nothing inference needs.

* :mod:`emoembed.training.codec` — stage 1, the emotion codec (``emoembed map``);
* :mod:`emoembed.training.baseline` — the pairwise FFN baseline that ``map --baseline`` compares against;
* :mod:`emoembed.training.encoder` — stage 2, a word/text/image encoder into a frozen codec (``emoembed fit-encoder``);
* :mod:`emoembed.training.scaffold` — what the three loops share: seeding, best-state keeping with patience,
  atomic save and resume of the training state.

Inference (:mod:`emoembed.model`, :mod:`emoembed.inference`) never imports this package.
"""
