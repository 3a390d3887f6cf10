"""Using a trained model: load it, transcribe audio files into ``.lab`` files, score
song transcriptions during training, and export portable graphs.

The Python API::

    from chordexp.inference import ChordRecognizer, transcribe_files

(importing this package imports torch: the entry modules import it inside ``main``.)
"""

from chordexp.inference.recognizer import Analysis, ChordRecognizer, Transcription, check_finite_weights
from chordexp.inference.transcribe import transcribe_files

__all__ = ["Analysis", "ChordRecognizer", "Transcription", "check_finite_weights", "transcribe_files"]
