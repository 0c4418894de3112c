"""Reference transcriptions with faster-whisper (CTranslate2), for golden files and benchmarks.

Usage: python fw_reference.py MODEL_DIR COMPUTE_TYPE BEAM_SIZE THREADS FILE...
Prints one JSON object: per file the segments (start, end, text, token ids) and the wall time
of its transcription, plus the total. The language is forced to English, as in this project's
evaluation.
"""

import json
import sys
import time

from faster_whisper import WhisperModel


def main() -> None:
    model_dir, compute_type, beam_size, threads, *files = sys.argv[1:]
    model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=int(threads))
    results = []
    for path in files:
        start = time.perf_counter()
        segments, info = model.transcribe(path, beam_size=int(beam_size), language="en")
        segments = [dict(start=s.start, end=s.end, text=s.text, tokens=s.tokens) for s in segments]
        results.append(dict(file=path, duration=info.duration, seconds=time.perf_counter() - start, segments=segments))
    print(json.dumps(dict(model=model_dir, compute_type=compute_type, beam_size=int(beam_size), results=results), indent=1))


if __name__ == "__main__":
    main()
