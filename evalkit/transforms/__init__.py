"""Counterfactual image transforms: does a model's score come from the image?

A derived task `T@NAME` is task T with each sample's image changed deterministically (and, for `hflip`, its
references mirrored with it). It is a task like any other in the store (own name and run ids; its stored spec
names the transform and seed), so runs of it resume, cache and compare with the usual machinery.
evalkit/views/reliance.py turns a task's runs and its variants' runs into image-reliance scores.
"""

from __future__ import annotations

# What each transform tests, as `evalkit reliance` and the docs say it.
WHAT_IT_TESTS: dict[str, str] = {
    "blank": "uniform image of the original's mean grey: what the model says with nothing to look at",
    "noise": "the original's pixels shuffled: same histogram, no anatomy",
    "shuffle": "another patient's image from the same split (a seeded derangement): does the answer follow it?",
    "hflip": "mirrored left-right, references mirrored too: a model that looks follows the flip",
}
