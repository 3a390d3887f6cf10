"""Using a trained model: load it, transcribe audio files into ``.lab`` files, score
song transcriptions during training, and export portable graphs.

The Python API::

    from chordexp.inference import ChordRecognizer, ready_model, transcribe_files

    recognizer = ChordRecognizer.from_checkpoint(ready_model())  # the model inside the package
    segments = recognizer.transcribe(audio, sample_rate)          # [(start, end, "C:maj"), ...]

(importing this package imports torch: the entry modules import it inside ``main``.)
"""

from chordexp.inference.packaged_model import ready_model
from chordexp.inference.recognizer import Analysis, ChordRecognizer, Transcription, check_finite_weights
from chordexp.inference.transcribe import transcribe_files

__all__ = ["Analysis", "ChordRecognizer", "Transcription", "check_finite_weights", "ready_model", "transcribe_files"]
