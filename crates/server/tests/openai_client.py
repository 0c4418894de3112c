"""Talks to the server under test with OpenAI's official Python client.

Usage: python openai_client.py BASE_URL AUDIO_FILE. Prints one JSON object with what each call
returned; the Rust test checks it. Errors of the client propagate (non-zero exit).
"""

import json
import sys

import openai
from openai import OpenAI

base_url, audio = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=120)
out = {"openai_version": openai.__version__}

with open(audio, "rb") as f:
    out["json"] = client.audio.transcriptions.create(model="whisper-1", file=f).text

with open(audio, "rb") as f:
    v = client.audio.transcriptions.create(
        model="whisper-1",
        file=f,
        response_format="verbose_json",
        timestamp_granularities=["segment"],
    )
    out["verbose"] = {
        "language": v.language,
        "duration": v.duration,
        "segments": [[s.start, s.end, s.text] for s in v.segments],
    }

with open(audio, "rb") as f:
    out["srt"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")

with open(audio, "rb") as f:
    events = client.audio.transcriptions.create(model="whisper-1", file=f, stream=True)
    out["stream"] = [[e.type, getattr(e, "delta", None) or getattr(e, "text", None)] for e in events]

try:
    client.audio.transcriptions.create(
        model="whisper-1", file=("notes.txt", b"not audio at all"), language="en"
    )
    out["bad_request"] = None
except openai.BadRequestError as e:
    out["bad_request"] = {"status": e.status_code, "message": e.message}

print(json.dumps(out))
