"""Phone alignments for token-quality evaluation: one phone set, one file format, two sources.

- :mod:`.phones`: ARPAbet without stress, the one phone set (real and synthetic speech share it);
- :mod:`.phn`: the ``SPLIT.phn`` text format and its reader;
- :mod:`.frames`: which phone covers each model frame's centre;
- :mod:`.sphinx`: forced alignment of real English speech (pocketsphinx, en-us model);
- :mod:`.flite`: synthetic speech with flite's exact phone boundaries;
- :mod:`.align`: ``hypervq-align`` over a folder of manifests, cached by audio fingerprint;
- :mod:`.synthetic`: a flite evaluation set (audio, manifest, words, phones) in one call.
"""
from .align import AlignReport, align_manifest_dir, align_split
from .frames import UNCOVERED, frame_centres, frame_phones
from .phn import AlignmentError, Segment, phn_path, read_phn, read_sidecar
from .phones import PHONES, SILENCE, normalize_phone, phone_order
from .speakers import speaker_of
from .synthetic import synthesize_aligned

__all__ = ["AlignReport", "align_manifest_dir", "align_split", "UNCOVERED", "frame_centres", "frame_phones",
           "AlignmentError", "Segment", "phn_path", "read_phn", "read_sidecar", "PHONES", "SILENCE",
           "normalize_phone", "phone_order", "speaker_of", "synthesize_aligned"]
