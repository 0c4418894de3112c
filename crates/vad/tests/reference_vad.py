"""Reference for crates/vad/tests/reference.rs: the silero-vad wheel's ONNX model run by
onnxruntime (frame by frame, 64-sample context, state carried, as the wheel's OnnxWrapper does),
and faster-whisper 1.2.1's own get_speech_timestamps on those probabilities.

argv: model.onnx, job.json ({"clips": [name, ...], "dir": d, "options": [{...}, ...]}), where
each clip is raw little-endian float32 at d/name.f32. Prints JSON on stdout.
"""
import importlib.metadata
import importlib.util
import json
import sys
import time
import types

import numpy as np
import onnxruntime as ort

model_path, job_path = sys.argv[1], sys.argv[2]
job = json.load(open(job_path))

opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
opts.inter_op_num_threads = 1
session = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])


def probabilities(audio):
    """One probability per 512 samples of audio (a multiple of 512 long)."""
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, 64), np.float32)
    sr = np.array(16000, dtype=np.int64)
    out = []
    for i in range(0, len(audio), 512):
        x = np.concatenate([context, audio[None, i : i + 512]], axis=1)
        p, state = session.run(None, {"input": x, "state": state, "sr": sr})
        out.append(float(p[0, 0]))
        context = x[:, -64:]
    return np.array(out, np.float32)


# faster-whisper's vad.py, loaded on its own: its package __init__ would import CTranslate2,
# which this venv does not need. Its one import from the package is get_assets_path.
dist = importlib.metadata.distribution("faster-whisper")
vad_file = str(dist.locate_file("faster_whisper/vad.py"))
assets = str(dist.locate_file("faster_whisper/assets"))
pkg = types.ModuleType("faster_whisper")
pkg.__path__ = []
utils = types.ModuleType("faster_whisper.utils")
utils.get_assets_path = lambda: assets
sys.modules["faster_whisper"] = pkg
sys.modules["faster_whisper.utils"] = utils
spec = importlib.util.spec_from_file_location("faster_whisper.vad", vad_file)
fw_vad = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fw_vad)
bundled_model = fw_vad.get_vad_model()


class WheelModel:
    def __call__(self, audio):
        return probabilities(audio)


result = {}
# faster-whisper's own VAD run (its batched ONNX model on 1 thread) over every input: the speed
# peer. Padded as faster-whisper pads.
timed_ms = 0.0
for name in job["clips"]:
    audio = np.fromfile(f"{job['dir']}/{name}.f32", dtype="<f4")
    padded = np.pad(audio, (0, 512 - len(audio) % 512))
    start = time.perf_counter()
    bundled_model(padded)
    timed_ms += (time.perf_counter() - start) * 1000.0
result["faster_whisper_vad_ms"] = timed_ms
for name in job["clips"]:
    audio = np.fromfile(f"{job['dir']}/{name}.f32", dtype="<f4")
    n = len(audio)
    padded = np.pad(audio, (0, (-n) % 512))
    entry = {"probs": probabilities(padded).tolist(), "spans": [], "bundled_spans": []}
    for o in job["options"]:
        vo = fw_vad.VadOptions(**o)
        fw_vad.get_vad_model = lambda: WheelModel()
        entry["spans"].append(fw_vad.get_speech_timestamps(audio, vo))
        # faster-whisper's own bundled model (reported, not compared).
        fw_vad.get_vad_model = lambda: bundled_model
        entry["bundled_spans"].append(fw_vad.get_speech_timestamps(audio, vo))
    result[name] = entry
json.dump(result, sys.stdout)
