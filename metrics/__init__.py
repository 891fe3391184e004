"""Evaluation of a translation: pixel and mask metrics, the domain classification score, FID and KID
(evaluate.py on test.py's results folder; training's ``--eval_freq`` on a held-out set)."""
