"""Speech recognition with a fine-tuned CTC checkpoint: decoding (greedy and lexicon + n-gram LM
beam search), WER and CER, and the n-gram LM and lexicon the beam search uses.

    lm.py       interpolated modified Kneser-Ney ARPA models, letter lexicons   (hypervq-build-lm)
    metrics.py  WER and CER with editdistance
    decode.py   emissions of a fairseq ``wav2vec_ctc`` checkpoint, greedy and beam-search decoding,
                the LM weight grid, the report                                  (hypervq-decode)

Only ``decode.py`` touches fairseq (inside functions) and flashlight-text (the ``decode`` extra).
"""
