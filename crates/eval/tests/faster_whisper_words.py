"""Word timestamps from faster-whisper for the word_timestamps test.

Usage: python faster_whisper_words.py MODEL_DIR CLIP.wav...
Prints one JSON object: {clip path: [[word, start, end], ...]}. Greedy decoding, English, with
faster-whisper's other transcription defaults, float32 on 2 CPU threads.
"""

import json
import sys

from faster_whisper import WhisperModel


def main() -> None:
    model_dir, clips = sys.argv[1], sys.argv[2:]
    model = WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    out = {}
    for clip in clips:
        segments, _ = model.transcribe(
            clip, beam_size=1, language="en", word_timestamps=True
        )
        out[clip] = [
            [w.word, w.start, w.end] for s in segments for w in (s.words or [])
        ]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
