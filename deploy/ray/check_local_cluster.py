"""Runs transcribe_archive.py on a Ray cluster of several nodes started on this machine, and kills
a worker node while it runs the binary. Used by crates/deploy-tests/tests/ray_cluster.rs, which
compares the outputs with a single-machine `xdna-whisper batch` run; writes a JSON report.

    python check_local_cluster.py MANIFEST OUTPUT --binary PATH --report JSON [--nodes 3] -- OPTIONS
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time

RECORD = re.compile(r"^[0-9a-f]{64}\.json$")


def records(output: str) -> int:
    """Finished or failed inputs so far: the records `<key>.json` written last."""
    try:
        return sum(1 for name in os.listdir(output) if RECORD.match(name))
    except FileNotFoundError:
        return 0


def parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            # The command name (in parentheses) may hold spaces: the fields after it are fixed.
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def binaries_under(raylets: dict[int, object], binary: str) -> list[tuple[int, object]]:
    """(pid, node) of each running `binary` process that descends from a worker node's raylet."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                # The binary itself, or an interpreter running it.
                if binary.encode() not in f.read().split(b"\0")[:2]:
                    continue
        except OSError:
            continue
        pid = ancestor = int(entry)
        while ancestor and ancestor > 1:
            if ancestor in raylets:
                found.append((pid, raylets[ancestor]))
                break
            ancestor = parent(ancestor)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest")
    parser.add_argument("output")
    parser.add_argument("--binary", required=True)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--report", required=True, help="where the JSON report goes")
    args = parser.parse_args(argv[:split])
    options = argv[split + 1 :]

    # The worker processes import the pipeline module by name, as `--working-dir` provides it
    # on a real cluster; the nodes started below inherit this.
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, here)

    # Every node on the loopback address (Ray's single-machine mode, as on macOS): the test's
    # traffic stays on this machine. Read when ray is imported; the nodes inherit it.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    import transcribe_archive

    total = len(transcribe_archive.read_inputs(args.manifest))
    started = time.monotonic()
    # The head schedules nothing (no CPUs): every batch runs on a worker node.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(args.nodes)]
    cluster.wait_for_nodes()
    assert cluster.address.startswith("127."), cluster.address
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    cluster_seconds = time.monotonic() - started
    raylets = {node.all_processes["raylet"][0].process.pid: node for node in workers}

    killed: dict = {}
    stop = threading.Event()

    def kill_a_busy_node() -> None:
        # Once some inputs are done and others not, kill a node in the middle of running the binary.
        while not stop.is_set():
            done = records(args.output)
            if 1 <= done < total:
                busy = binaries_under(raylets, args.binary)
                if busy:
                    pid, node = busy[0]
                    cluster.remove_node(node, allow_graceful=False)
                    killed.update(node_id=node.node_id, binary_pid=pid, records_at_kill=done)
                    deadline = time.monotonic() + 10
                    while alive(pid) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    killed["binary_died"] = not alive(pid)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_node, daemon=True)
    killer.start()
    try:
        report = transcribe_archive.run(
            args.manifest,
            args.output,
            options,
            binary=args.binary,
            batch_size=args.batch_size,
            max_retries=3,
        )
    finally:
        stop.set()
        killer.join()
        ray.shutdown()
        cluster.shutdown()
    # Not stdout: Ray prints the logs of a lost node there.
    with open(args.report, "w", encoding="utf-8") as f:
        json.dump(
            {
                "nodes": args.nodes,
                "inputs": report.inputs,
                "batches": report.batches,
                "wall_seconds": report.wall_seconds,
                "cluster_start_seconds": cluster_seconds,
                "done": report.done,
                "failed": report.failed,
                "missing": report.missing,
                "killed": killed,
            },
            f,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
