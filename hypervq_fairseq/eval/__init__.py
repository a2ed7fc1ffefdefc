"""Evaluating what a pretrained model gives: token files, codebook use, token quality against phones.

Pure measurement code (numpy, torch, scikit-learn). What needs fairseq (loading a checkpoint,
running the encoder) is imported inside the functions that need it, from ``hypervq_fairseq.fairseq``.
"""
