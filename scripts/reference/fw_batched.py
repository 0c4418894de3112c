"""faster-whisper's batched pipeline (BatchedInferencePipeline) on one recording, for benchmarks.

Usage: python fw_batched.py MODEL_DIR COMPUTE_TYPE BEAM_SIZE THREADS BATCH_SIZE LANGUAGE AUDIO_F32
AUDIO_F32 holds 16 kHz mono samples as little-endian float32 (read before the clock starts).
LANGUAGE is a code such as en, or auto to detect it. The pipeline's defaults otherwise (Silero
VAD on, no timestamps, first temperature only). Prints one JSON object: the segments and the
wall time of the transcription (model loading and reading the samples excluded).
"""

import json
import sys
import time

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel


def main() -> None:
    model_dir, compute_type, beam_size, threads, batch_size, language, audio_path = sys.argv[1:]
    model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=int(threads))
    pipeline = BatchedInferencePipeline(model)
    audio = np.fromfile(audio_path, dtype="<f4")
    start = time.perf_counter()
    segments, info = pipeline.transcribe(
        audio,
        beam_size=int(beam_size),
        batch_size=int(batch_size),
        language=None if language == "auto" else language,
    )
    # transcribe() is lazy: the decoding happens while the segments are read.
    segments = [dict(start=s.start, end=s.end, text=s.text) for s in segments]
    seconds = time.perf_counter() - start
    print(json.dumps(dict(compute_type=compute_type, duration=info.duration, seconds=seconds, segments=segments), indent=1))


if __name__ == "__main__":
    main()
