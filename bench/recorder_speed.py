"""Recorder throughput: does `roboq record` keep up with two 30 Hz 640x480 rgb8 cameras and 500 Hz
joint states without dropping a message?

    python bench/recorder_speed.py [--seconds 20] [--best-effort] [--shm-segment-mb 32] [--depth 10]
                                   [--repeats 1] [--dir DIR] [--out bench/results/recorder_speed.json]

Two processes on this machine, in a ROS domain of their own (localhost discovery): the robot, this
script again in ``--publisher`` mode, publishes ``sensor_msgs/Image`` frames on two cameras and
``sensor_msgs/JointState`` (7 joints) with rclpy, each message numbered in ``header.frame_id``; the
recorder is ``roboq record topics=[...] keys=false``. Publishing starts once every publisher sees
the recorder's subscription, and stops after ``--seconds``; the recorder is stopped (SIGINT) once it
has worked off what it received (its CPU time stops growing), and the MCAP log is read back with
rosbags: per topic sent, recorded, dropped (numbers never logged) and duplicated messages, with
the publish rate achieved, the log's size and write rate, and the recorder's CPU use and peak
memory (``--repeats``: rounds of every case, as drops come and go with the machine's load).
Publishers are reliable (depth ``--depth``, the usual driver default 10);
``--best-effort`` also runs with best-effort publishers, as many camera drivers have.

Fast DDS (rmw_fastrtps_cpp) hands data to other processes through the sender's shared-memory
segment, 512 KB by default, which a 640x480 rgb8 frame (921,600 B) does not fit: it is sent in
fragments. On a busy machine, best-effort frames are then mostly lost, and reliable joint states
now and then (a depth-10 writer at 500 Hz keeps only 20 ms of samples to resend). A bare counting
subscriber loses as many as the recorder; a larger segment on the publishing side, or a deeper
publisher history, removed the losses. ``--shm-segment-mb N`` also runs every case with an N MB
segment (the shipped profile configs/ros/fastdds_large_messages.xml, sized to N MB, given to both
processes in ``FASTDDS_DEFAULT_PROFILES_FILE``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import queue
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from machine import cpu_model

from ros_nodes.domains import free_domains

CAMERAS = ("/bench/cam0/image_raw", "/bench/cam1/image_raw")
JOINTS = "/bench/joint_states"
TOPICS = (*CAMERAS, JOINTS)
CAMERA_HZ, JOINT_HZ = 30.0, 500.0
SIZE, TINY_SIZE = (480, 640), (48, 64)  # height, width
JOINT_NAMES = tuple(f"joint_{i}" for i in range(1, 8))
SUBSCRIBE_TIMEOUT = 120.0  # s for the recorder to start and subscribe (imports on a loaded machine)
QUIET_CPU = 0.05  # the recorder is done once it uses under 5% of a core ...
QUIET_WINDOW = 1.0  # ... over this many seconds
SHM_PROFILE = Path(__file__).resolve().parents[1] / "configs" / "ros" / "fastdds_large_messages.xml"


def shm_profile(segment_mb: int) -> str:
    """The shipped Fast DDS profile (configs/ros/fastdds_large_messages.xml) with an N MB segment."""
    xml = SHM_PROFILE.read_text()
    xml = re.sub(r"<segment_size>\d+</segment_size>", f"<segment_size>{segment_mb * 2**20}</segment_size>", xml)
    message = min(segment_mb * 2**20 // 4, 2**24)
    return re.sub(r"<maxMessageSize>\d+</maxMessageSize>", f"<maxMessageSize>{message}</maxMessageSize>", xml)


TICKS = os.sysconf("SC_CLK_TCK")
FIELDS = {
    "dropped": "sequence numbers sent but never in the log",
    "achieved_hz": "publish rate the publisher reached (its worst_lag_ms: furthest behind schedule)",
    "recorded_hz": "rate of the messages logged, by their log (publication) times",
    "write_mb_per_s": "log size / publishing time",
    "recorder_cpu_percent": "recorder process CPU time (all threads) / wall time while publishing (100 = one core)",
    "drain_s": "after publishing (reliable: all acknowledged), until the recorder's CPU use fell under 5%",
    "acked": "reliable: every sample acknowledged by the recorder's readers",
}


# -- the robot: publisher mode ----------------------------------------------------------------------
def publish(args: argparse.Namespace) -> int:
    """Publish every stream on schedule for ``args.seconds``; the report (JSON) goes to ``args.report``."""
    import numpy as np
    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, JointState

    rclpy.init()  # ROS_DOMAIN_ID and the discovery range come from the environment
    node = rclpy.create_node("bench_robot")
    reliability = ReliabilityPolicy.BEST_EFFORT if args.best_effort else ReliabilityPolicy.RELIABLE
    qos = QoSProfile(
        depth=args.depth, history=HistoryPolicy.KEEP_LAST, reliability=reliability, durability=DurabilityPolicy.VOLATILE
    )
    height, width = args.size
    rng = np.random.default_rng(0)
    messages: dict[str, Any] = {}
    publishers: dict[str, Any] = {}
    for topic in CAMERAS:
        image = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
        image.data = rng.integers(0, 256, height * width * 3, dtype=np.uint8).tobytes()  # logged as is
        messages[topic], publishers[topic] = image, node.create_publisher(Image, topic, qos)
    joints = JointState(name=list(JOINT_NAMES))
    joints.velocity = joints.effort = [0.0] * len(JOINT_NAMES)
    messages[JOINTS], publishers[JOINTS] = joints, node.create_publisher(JointState, JOINTS, qos)
    rates = {**dict.fromkeys(CAMERAS, CAMERA_HZ), JOINTS: JOINT_HZ}

    deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
    while any(p.get_subscription_count() == 0 for p in publishers.values()):
        if time.monotonic() > deadline:
            print("no subscriber", flush=True)
            return 3
        time.sleep(0.02)
    print("matched", flush=True)

    sent = dict.fromkeys(TOPICS, 0)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    worst_lag = dict.fromkeys(TOPICS, 0.0)  # s behind schedule at the worst moment
    clock = node.get_clock()
    cpu0 = time.process_time()
    print("publishing", flush=True)
    t0 = time.perf_counter()
    due = dict.fromkeys(TOPICS, t0)
    end = t0 + args.seconds
    while True:
        now = time.perf_counter()
        for topic in TOPICS:
            # every message due by now, late ones at once: the count sent is the count scheduled
            while due[topic] <= now and due[topic] < end:
                msg, seq = messages[topic], sent[topic]
                msg.header.stamp = clock.now().to_msg()
                msg.header.frame_id = str(seq)  # the sequence number: drops are counted from the log
                if topic == JOINTS:
                    msg.position = [0.001 * seq + 0.1 * j for j in range(len(JOINT_NAMES))]
                publishers[topic].publish(msg)
                stamp = time.perf_counter()
                worst_lag[topic] = max(worst_lag[topic], stamp - due[topic])
                first.setdefault(topic, stamp)
                last[topic] = stamp
                sent[topic] += 1
                due[topic] = t0 + sent[topic] / rates[topic]
                now = stamp
        upcoming = min(due.values())
        if upcoming >= end:
            break
        time.sleep(max(upcoming - time.perf_counter(), 0.0))
    publish_s = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print("published", flush=True)
    acked = None
    if not args.best_effort:  # every reliable sample in the recorder's hands, not just on the wire
        acked = all(p.wait_for_all_acked(Duration(seconds=60)) for p in publishers.values())
    report = {
        "publish_s": publish_s,
        "cpu_percent": 100 * cpu / publish_s,
        "acked": acked,
        "topics": {
            t: {
                "sent": sent[t],
                "rate_hz": rates[t],
                "achieved_hz": (sent[t] - 1) / (last[t] - first[t]) if sent[t] > 1 else 0.0,
                "worst_lag_ms": 1e3 * worst_lag[t],
            }
            for t in TOPICS
        },
    }
    Path(args.report).write_text(json.dumps(report))
    print("reported", flush=True)
    sys.stdin.read()  # stay up (best effort: nothing in flight lost) until the recorder has stopped
    node.destroy_node()
    rclpy.shutdown()
    return 0


# -- the bench --------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (ext4, tmpfs, ...), from /proc/mounts."""
    best, kind = "", "?"
    resolved = str(path.resolve())
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, fstype, *_ = line.split()
            if (resolved == mount or resolved.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind


def lines_of(proc: subprocess.Popen) -> queue.Queue[str]:
    """The process's stdout lines as they come (a reader thread)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put("")  # EOF

    threading.Thread(target=read, daemon=True).start()
    return lines


def expect(lines: queue.Queue[str], marker: str, timeout: float, procs: dict[str, subprocess.Popen], what: str) -> None:
    """Wait for the publisher to print ``marker``, as long as both processes live (up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            line = ""
        if line == marker:
            return
        if line:
            print(f"  publisher: {line}")
        for name, proc in procs.items():
            if proc.poll() is not None and lines.empty():
                raise RuntimeError(f"{what}: the {name} exited ({proc.returncode}) before the publisher's '{marker}'")
    raise RuntimeError(f"{what}: no '{marker}' from the publisher after {timeout:.0f} s")


def wait_quiet(pid: int, cap: float) -> tuple[float, bool]:
    """Wait until the recorder has worked off its backlog (CPU under QUIET_CPU over QUIET_WINDOW);
    returns (seconds waited, whether it got quiet before ``cap``)."""
    start = time.monotonic()
    samples = [(start, cpu_seconds(pid))]
    while time.monotonic() - start < cap:
        time.sleep(0.1)
        now, cpu = time.monotonic(), cpu_seconds(pid)
        samples.append((now, cpu))
        old = [s for s in samples if now - s[0] >= QUIET_WINDOW]
        if old and (cpu - old[-1][1]) / (now - old[-1][0]) < QUIET_CPU:
            return old[-1][0] - start, True
    return time.monotonic() - start, False


def frame_id(raw: bytes) -> str:
    """``header.frame_id`` of a serialized (CDR, little endian) message that starts with a Header."""
    if raw[1] != 1:
        raise ValueError("not little-endian CDR")
    (length,) = struct.unpack_from("<I", raw, 12)  # after the 4-byte encapsulation and the stamp
    return raw[16 : 16 + length - 1].decode()


def read_log(bag: Path) -> dict[str, dict[str, Any]]:
    """Per topic: sequence numbers logged (in log order) and log times (ns)."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    out: dict[str, dict[str, Any]] = {}
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for connection, stamp, raw in reader.messages():
            entry = out.setdefault(connection.topic, {"seqs": [], "times": []})
            if connection.topic in TOPICS:
                entry["seqs"].append(int(frame_id(raw)))
            entry["times"].append(stamp)
    return out


def missing_runs(missing: list[int], limit: int = 8) -> list[list[int]]:
    """Missing sequence numbers as [first, last] runs (the first ``limit``)."""
    runs: list[list[int]] = []
    for n in missing:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return runs[:limit]


def run_case(args: argparse.Namespace, best_effort: bool, shm_mb: int, domain: int, root: Path) -> dict[str, Any]:
    """One recording: publisher and recorder processes, then the log read back. ``shm_mb``: the Fast
    DDS shared-memory segment of both processes (0: Fast DDS's default)."""
    session = root / f"session_{'best_effort' if best_effort else 'reliable'}_shm{shm_mb}"
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "PYTHONUNBUFFERED": "1",
    }
    if shm_mb:
        profile = root / f"fastdds_shm{shm_mb}.xml"
        profile.write_text(shm_profile(shm_mb))
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    recorder_out = (root / f"{session.name}.recorder.txt").open("w")
    recorder = subprocess.Popen(
        [sys.executable, "-m", "robo_q.cli", "record", f"topics=[{','.join(TOPICS)}]", f"out={session}", "keys=false"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=recorder_out,
        stderr=subprocess.STDOUT,
    )
    report_path = root / f"{session.name}.publisher.json"
    size = "x".join(map(str, args.size))
    publisher = subprocess.Popen(
        [sys.executable, __file__, "--publisher", "--seconds", str(args.seconds), "--depth", str(args.depth)]
        + ["--size", size, "--report", str(report_path)]
        + (["--best-effort"] if best_effort else []),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = lines_of(publisher)
    try:
        procs: dict[str, subprocess.Popen] = {"publisher": publisher, "recorder": recorder}
        what = session.name
        expect(lines, "matched", SUBSCRIBE_TIMEOUT + 10, procs, what)
        expect(lines, "publishing", 30, procs, what)
        cpu_start, t_start = cpu_seconds(recorder.pid), time.monotonic()
        expect(lines, "published", args.seconds * 3 + 30, procs, what)
        cpu_end, t_end = cpu_seconds(recorder.pid), time.monotonic()
        expect(lines, "reported", 90, procs, what)  # reliable: once every sample is acknowledged
        drain_s, quiet = wait_quiet(recorder.pid, cap=max(30.0, 2 * args.seconds))
        rss = peak_rss_mb(recorder.pid)
        cpu_total = cpu_seconds(recorder.pid)
    finally:
        if recorder.poll() is None:
            recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()
        recorder_out.close()
        try:
            publisher.communicate(input="", timeout=30)  # its stdin closes: it exits
        except subprocess.TimeoutExpired:
            publisher.kill()
            publisher.wait()
    recorder_log = (root / f"{session.name}.recorder.txt").read_text()
    if recorder.returncode != 0:
        raise RuntimeError(f"the recorder exited with {recorder.returncode}:\n{recorder_log[-3000:]}")
    if publisher.returncode != 0:
        raise RuntimeError(f"the publisher exited with {publisher.returncode}")
    sent = json.loads(report_path.read_text())
    bag = session / "log"
    log_bytes = sum(p.stat().st_size for p in bag.rglob("*") if p.is_file())
    logged = read_log(bag)
    shutil.rmtree(session)  # a GB a minute: not kept for the next case
    publish_s = sent["publish_s"]
    topics = {}
    for topic in TOPICS:
        n = sent["topics"][topic]["sent"]
        seqs = logged.get(topic, {"seqs": [], "times": []})["seqs"]
        times = logged.get(topic, {"seqs": [], "times": []})["times"]
        unique = set(seqs)
        missing = sorted(set(range(n)) - unique)
        topics[topic] = {
            **sent["topics"][topic],
            "recorded": len(unique & set(range(n))),
            "dropped": len(missing),
            "duplicates": len(seqs) - len(unique),
            "out_of_order": sum(b < a for a, b in itertools.pairwise(seqs)),
            "missing_runs": missing_runs(missing),
            "recorded_hz": (len(times) - 1) / ((times[-1] - times[0]) * 1e-9) if len(times) > 1 else 0.0,
        }
    return {
        "qos": "best_effort" if best_effort else "reliable",
        "depth": args.depth,
        "shm_segment_mb": shm_mb or None,  # None: Fast DDS's default (512 KB)
        "domain": domain,
        "publish_s": publish_s,
        "publisher_cpu_percent": sent["cpu_percent"],
        "acked": sent["acked"],
        "topics": topics,
        "sent": sum(t["sent"] for t in topics.values()),
        "recorded": sum(t["recorded"] for t in topics.values()),
        "dropped": sum(t["dropped"] for t in topics.values()),
        "log_mb": log_bytes / 1e6,
        "write_mb_per_s": log_bytes / 1e6 / publish_s,
        "recorder_cpu_percent": 100 * (cpu_end - cpu_start) / (t_end - t_start),
        "recorder_cpu_s_total": cpu_total,
        "recorder_peak_rss_mb": rss,
        "drain_s": drain_s,
        "drained": quiet,
        "recorder_summary": recorder_log[recorder_log.rfind("== record ==") :].strip(),
    }


def label(r: dict[str, Any]) -> str:
    shm = f"{r['shm_segment_mb']} MB" if r["shm_segment_mb"] else "default"
    return f"{r['qos'].replace('_', ' ')}, depth {r['depth']}, SHM {shm}"


def markdown(results: list[dict[str, Any]]) -> str:
    runs = len({r["run"] for r in results}) > 1

    def row_label(r: dict[str, Any]) -> str:
        return f"{label(r)}, run {r['run'] + 1}" if runs else label(r)

    rows = [
        "| case | topic | rate Hz | achieved Hz | sent | recorded | dropped | duplicates | publisher worst lag ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for topic, t in r["topics"].items():
            rows.append(
                f"| {row_label(r)} | {topic} | {t['rate_hz']:g} | {t['achieved_hz']:.1f} | {t['sent']} "
                f"| {t['recorded']} | {t['dropped']} | {t['duplicates']} | {t['worst_lag_ms']:.1f} |"
            )
    rows += [
        "",
        "| case | seconds | log MB | write MB/s | recorder CPU % | recorder peak RSS MB | drain s | publisher CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {row_label(r)} | {r['publish_s']:.1f} | {r['log_mb']:.1f} | {r['write_mb_per_s']:.1f} "
            f"| {r['recorder_cpu_percent']:.0f} | {r['recorder_peak_rss_mb']:.0f} | {r['drain_s']:.1f}"
            f"{'' if r['drained'] else ' (still busy)'} | {r['publisher_cpu_percent']:.0f} |"
        )
    if runs:
        rows += ["", "| case | runs | runs with drops | dropped per run |", "|---|---:|---:|---|"]
        for case in dict.fromkeys(label(r) for r in results):
            drops = [r["dropped"] for r in results if label(r) == case]
            rows.append(f"| {case} | {len(drops)} | {sum(d > 0 for d in drops)} | {', '.join(map(str, drops))} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=None, help="publishing time (default 20; --tiny 3)")
    parser.add_argument("--depth", type=int, default=10, help="publisher history depth (KEEP_LAST)")
    parser.add_argument("--best-effort", action="store_true", help="also record best-effort publishers")
    parser.add_argument(
        "--shm-segment-mb",
        type=int,
        default=0,
        help="also run every case with a Fast DDS shared-memory segment of this many MB (rmw_fastrtps_cpp)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of every case (drops vary with the load)")
    parser.add_argument("--dir", type=Path, default=None, help="where the logs are written (default: a temp dir)")
    parser.add_argument("--tiny", action="store_true", help="3 s of 48x64 frames: for tests (needs --out)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON results (default bench/results/recorder_speed.json)"
    )
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)  # the robot process
    parser.add_argument("--size", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--report", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        args.size = tuple(int(v) for v in args.size.split("x"))
        return publish(args)
    if args.tiny and args.out is None:
        parser.error("--tiny needs --out (it never writes over the committed results)")
    from rclpy.utilities import get_rmw_implementation_identifier

    rmw = get_rmw_implementation_identifier()
    if args.shm_segment_mb and not rmw.startswith("rmw_fastrtps"):
        parser.error(f"--shm-segment-mb configures Fast DDS; the ROS middleware here is {rmw}")
    args.seconds = args.seconds if args.seconds is not None else (3.0 if args.tiny else 20.0)
    args.size = TINY_SIZE if args.tiny else SIZE
    out = args.out or Path("bench/results/recorder_speed.json")
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    domains = free_domains()
    results = []
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="recorder_speed_", dir=args.dir))
    cases = [
        (best_effort, shm_mb)
        for shm_mb in ([0, args.shm_segment_mb] if args.shm_segment_mb else [0])
        for best_effort in ([False, True] if args.best_effort else [False])
    ]
    try:
        for repeat in range(args.repeats):  # rounds of every case: the machine's load drifts over them all
            for best_effort, shm_mb in cases:
                shm = f"{shm_mb} MB" if shm_mb else "default"
                qos = "best effort" if best_effort else "reliable"
                run = f", run {repeat + 1} of {args.repeats}" if args.repeats > 1 else ""
                print(f"recording {args.seconds:g} s ({qos}, SHM segment {shm}{run}) ...", flush=True)
                results.append({"run": repeat, **run_case(args, best_effort, shm_mb, next(domains), root)})
        fs = filesystem(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    height, width = args.size
    print(
        f"\ntwo {width}x{height} rgb8 cameras at {CAMERA_HZ:g} Hz + {len(JOINT_NAMES)}-joint JointState at "
        f"{JOINT_HZ:g} Hz, {args.seconds:g} s, {rmw}, log on {fs}\n"
    )
    print(markdown(results))
    doc = {
        "date": started.isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "rmw": rmw,
            "log_filesystem": fs,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "settings": {
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "tiny": args.tiny,
            "seconds": args.seconds,
            "cameras": {"topics": list(CAMERAS), "rate_hz": CAMERA_HZ, "height": height, "width": width},
            "joint_states": {"topic": JOINTS, "rate_hz": JOINT_HZ, "joints": len(JOINT_NAMES)},
            "depth": args.depth,
            "shm_segment_mb": args.shm_segment_mb or None,
            "repeats": args.repeats,
        },
        "fields": FIELDS,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
