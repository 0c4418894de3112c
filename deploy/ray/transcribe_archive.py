"""Transcribe an audio archive on a Ray cluster with `xdna-whisper batch`.

The inputs (a JSON Lines manifest, or the audio files under a directory or S3 prefix) become a Ray
Dataset; Ray Data hands them out in batches to tasks on the cluster's nodes, and each task runs
the `xdna-whisper` binary on a one-batch manifest with the shared `--output`. The binary names
every output by a content key of the audio, options and model and writes the record last, so a
task retried after a crash or a lost node skips what its first attempt finished and never
duplicates an output. At the end the driver checks that every input has a `done` record.

    ray job submit --working-dir deploy/ray -- python transcribe_archive.py \\
        s3://archive/manifest.jsonl --output s3://archive/transcripts/ -- --model base

Arguments after `--` go to `xdna-whisper batch` unchanged (model and transcription options). The
binary must be on every node's PATH (or give `--binary`), with its model in the node's cache.
Requires `ray[data]==2.60.0` (requirements.txt).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import math
import os
import posixpath
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import ray
from pyarrow import fs as pafs

# The audio file endings `xdna-whisper batch` lists in a directory (crates/batch/src/input.rs).
AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "ogg", "oga", "m4a", "aac", "aiff", "aif")
# Exit codes of `xdna-whisper batch`: 0 all done or skipped, 2 some inputs failed (recorded in the
# output, not retried: the same file fails the same way), anything else an infrastructure error.
EXIT_SOME_FAILED = 2


class BatchError(RuntimeError):
    """`xdna-whisper batch` failed as a whole: retried by Ray (`retry_exceptions`)."""


@dataclass
class Report:
    inputs: int
    batches: int
    wall_seconds: float
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed and not self.missing


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem of a local path or s3:// URI, with the binary's S3 settings."""
    if uri.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
        s3 = pafs.S3FileSystem(
            endpoint_override=endpoint,
            region=os.environ.get("AWS_REGION", "us-east-1"),
            allow_bucket_creation=False,
        )
        return s3, uri[len("s3://") :].rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def _join(base_uri: str, rel: str) -> str:
    if base_uri.startswith("s3://"):
        return posixpath.join(base_uri.rstrip("/"), rel)
    return os.path.join(base_uri, rel)


def _read_text(uri: str) -> str | None:
    filesystem, path = _filesystem(uri)
    try:
        with filesystem.open_input_stream(path) as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        return None


def read_inputs(source: str) -> list[dict]:
    """The manifest lines of `source` (relative paths made absolute, `id` made explicit, so that a
    one-batch manifest written elsewhere names the same files and ids), or one line per audio
    file under a directory or prefix (id: its path relative to it, as the binary names it)."""
    filesystem, path = _filesystem(source)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        text = _read_text(source)
        parent = source.rsplit("/", 1)[0] if source.startswith("s3://") else os.path.dirname(path)
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{source}, line {number}: {e}") from None
            written = entry.get("path") or entry.get("url")
            if not isinstance(written, str):
                raise ValueError(f'{source}, line {number}: give "path" or "url"')
            entry.setdefault("id", written)
            if "path" in entry and not entry["path"].startswith("/"):
                absolute = _join(parent, entry.pop("path"))
                entry["url" if absolute.startswith("s3://") else "path"] = absolute
            entries.append(entry)
        return entries
    if info.type != pafs.FileType.Directory and not source.startswith("s3://"):
        raise FileNotFoundError(f"{source}: no such manifest or directory")
    selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    entries = []
    for item in filesystem.get_file_info(selector):
        name = item.path[len(path) :].lstrip("/")
        if (
            item.type != pafs.FileType.File
            or name.rsplit(".", 1)[-1].lower() not in AUDIO_EXTENSIONS
        ):
            continue
        location = _join(source if source.startswith("s3://") else path, name)
        entries.append({"id": name, ("url" if location.startswith("s3://") else "path"): location})
    entries.sort(key=lambda e: e["id"])
    if not entries:
        raise FileNotFoundError(f"{source}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return entries


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the Ray worker that started it dies, as a
    lost node's processes do, so that no orphan writes on after its task was retried elsewhere."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def transcribe_batch(batch: dict, *, binary: str, output: str, options: list[str]) -> dict:
    """One Ray task: `xdna-whisper batch` on these inputs. Returns each input's id and the exit
    code; raises `BatchError` (so that Ray retries the task) when the command failed as a whole."""
    entries = [json.loads(e) for e in batch["entry"]]
    with tempfile.TemporaryDirectory(prefix="xdna-whisper-ray-") as tmp:
        manifest = os.path.join(tmp, "manifest.jsonl")
        with open(manifest, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(e) + "\n" for e in entries)
        cmd = [binary, "batch", manifest, "--output", output, "--progress", "none", *options]
        proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=_die_with_parent)
    if proc.returncode not in (0, EXIT_SOME_FAILED):
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise BatchError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{tail}")
    node = ray.get_runtime_context().get_node_id()
    return {
        "id": [e["id"] for e in entries],
        "exit_code": [proc.returncode] * len(entries),
        "node": [node] * len(entries),
    }


def check_records(output: str, ids: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Each input's outcome as the output records it: `inputs/<sha256 of id>.json` names the
    input's key, and `<key>.json`, written last, says whether it is done."""
    done, failed, missing = [], {}, []
    for input_id in ids:
        index_text = _read_text(
            _join(output, f"inputs/{hashlib.sha256(input_id.encode()).hexdigest()}.json")
        )
        if index_text is None:
            missing.append(input_id)
            continue
        index = json.loads(index_text)
        key = index.get("key")
        # No key: the input could not even be read, and the index entry holds the error.
        record_text = _read_text(_join(output, f"{key}.json")) if key else index_text
        if record_text is None:
            missing.append(input_id)
            continue
        record = json.loads(record_text)
        if record.get("status") == "done":
            done.append(input_id)
        elif record.get("status") == "failed":
            failed[input_id] = str(record.get("error"))
        else:
            missing.append(input_id)
    return done, failed, missing


def run(
    source: str,
    output: str,
    options: list[str],
    *,
    binary: str = "xdna-whisper",
    batch_size: int = 4,
    cpus_per_task: float = 1.0,
    max_retries: int = 3,
) -> Report:
    """Transcribes every input of `source` into `output` on the connected Ray cluster."""
    # The tasks run in other directories, on other machines: no relative local paths.
    if not output.startswith("s3://"):
        output = os.path.abspath(output)
    if os.sep in binary:
        binary = os.path.abspath(binary)
    entries = read_inputs(source)
    batches = math.ceil(len(entries) / batch_size)
    start = time.monotonic()
    dataset = ray.data.from_items(
        [{"entry": json.dumps(e)} for e in entries], override_num_blocks=batches
    )
    results = dataset.map_batches(
        transcribe_batch,
        batch_size=batch_size,
        fn_kwargs={"binary": binary, "output": output, "options": options},
        num_cpus=cpus_per_task,
        # A lost node or worker (a system failure) and an exception (BatchError) are retried,
        # on any node. (An exception class list would not match when this file runs as __main__.)
        max_retries=max_retries,
        retry_exceptions=True,
    ).take_all()
    wall = time.monotonic() - start
    ids = [e["id"] for e in entries]
    reported = {r["id"] for r in results}
    done, failed, missing = check_records(output, ids)
    missing = sorted(set(missing) | (set(ids) - reported))
    return Report(len(ids), batches, wall, done, failed, missing)


def main(argv: list[str]) -> int:
    if "--" in argv:
        split = argv.index("--")
        argv, options = argv[:split], argv[split + 1 :]
    else:
        options = []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="JSON Lines manifest, directory or s3://bucket/prefix/")
    parser.add_argument("--output", required=True, help="local directory or s3://bucket/prefix/")
    parser.add_argument("--binary", default="xdna-whisper", help="the command on every node")
    parser.add_argument("--batch-size", type=int, default=4, help="inputs per task")
    parser.add_argument("--cpus-per-task", type=float, default=1.0)
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument(
        "--address", default=None, help="Ray cluster (default: RAY_ADDRESS or local)"
    )
    args = parser.parse_args(argv)
    ray.init(address=args.address)
    report = run(
        args.input,
        args.output,
        options,
        binary=args.binary,
        batch_size=args.batch_size,
        cpus_per_task=args.cpus_per_task,
        max_retries=args.max_retries,
    )
    print(
        f"{len(report.done)} done, {len(report.failed)} failed, {len(report.missing)} missing "
        f"of {report.inputs} inputs in {report.batches} batches, {report.wall_seconds:.1f} s",
        file=sys.stderr,
    )
    for input_id, error in report.failed.items():
        print(f"failed: {input_id}: {error}", file=sys.stderr)
    for input_id in report.missing:
        print(f"missing: {input_id}", file=sys.stderr)
    return 0 if report.complete else EXIT_SOME_FAILED if not report.missing else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
