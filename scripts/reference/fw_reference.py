"""Reference transcriptions with faster-whisper (CTranslate2), for golden files and benchmarks.

Usage: python fw_reference.py MODEL_DIR COMPUTE_TYPE BEAM_SIZE THREADS LANGUAGE FILE...
LANGUAGE is a code such as en, or auto to detect it; or one such per file, comma-separated. Prints one JSON object: per file the
segments (start, end, text, token ids) and the wall time of its transcription (model loading
excluded).
"""

import json
import sys
import time

from faster_whisper import WhisperModel


def main() -> None:
    model_dir, compute_type, beam_size, threads, language, *files = sys.argv[1:]
    model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=int(threads))
    languages = language.split(",")
    if len(languages) == 1:
        languages = languages * len(files)
    if len(languages) != len(files):
        sys.exit(f"LANGUAGE gives {len(languages)} languages for {len(files)} files")
    results = []
    for path, language in zip(files, languages):
        start = time.perf_counter()
        segments, info = model.transcribe(
            path, beam_size=int(beam_size), language=None if language == "auto" else language
        )
        # transcribe() is lazy: the decoding happens while the segments are read.
        segments = [dict(start=s.start, end=s.end, text=s.text, tokens=s.tokens) for s in segments]
        results.append(dict(file=path, duration=info.duration, language=info.language, seconds=time.perf_counter() - start, segments=segments))
    print(json.dumps(dict(model=model_dir, compute_type=compute_type, beam_size=int(beam_size), results=results), indent=1))


if __name__ == "__main__":
    main()
