"""Deterministic log-like test data (compresses about like real training logs: 3-4x with gzip).

Output of the 1 GiB cases repeats one 16 MiB block; gzip's window is 32 KiB, so the repetition
does not make compression any easier than fresh text would be.
"""

from __future__ import annotations

import random
from pathlib import Path

BLOCK = 16 * 1024 * 1024
_LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
_WORDS = (  # noqa: SIM905
    "train eval step loss accuracy batch epoch lr grad_norm worker shard checkpoint saved "
    "loading dataset tokens throughput samples"
).split()


def log_text(size: int, seed: int = 8) -> bytes:
    rng = random.Random(seed)
    out: list[str] = []
    n = 0
    t = 1714550400.0
    i = 0
    while n < size:
        t += rng.random() * 0.01
        i += 1
        kind = rng.random()
        if kind < 0.7:
            line = (
                f"2024-05-01T{int(t / 3600) % 24:02d}:{int(t / 60) % 60:02d}:{t % 60:06.3f}Z "
                f"{rng.choice(_LEVELS):5s} worker-{rng.randrange(16)} step={i} epoch={i // 5000} "
                f"loss={rng.random() * 4:.5f} acc={rng.random():.4f} lr={rng.random() * 1e-3:.6f} "
                f"tokens/s={rng.randrange(10000, 90000)}\n"
            )
        elif kind < 0.9:
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(3, 15)))
            line = f"{rng.choice(_LEVELS)} {words} id={rng.getrandbits(64):016x}\n"
        else:
            bar = "".join(rng.choice("=-#.") for _ in range(rng.randrange(10, 80)))
            line = f"  {bar} {rng.randrange(100)}%\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def hex_text(size: int, seed: int = 16) -> bytes:
    """Random bytes as lowercase hex, 128 digits a line: text that compresses only 2:1."""
    rng = random.Random(seed)
    line = 128
    raw = rng.randbytes(size // 2 + line).hex()
    out = "\n".join(raw[i : i + line] for i in range(0, len(raw), line)) + "\n"
    return out.encode()[:size]


KINDS = {"log text": ("block.log", log_text), "random hex": ("block.hex", hex_text)}


def block_file(work: Path, kind: str = "log text") -> Path:
    """The 16 MiB block COMMAND repeats (made once per work directory), of one data kind."""
    name, make = KINDS[kind]
    path = work / name
    if not path.exists() or path.stat().st_size != BLOCK:
        path.write_bytes(make(BLOCK))
    return path


def results_dir(work: Path, name: str, count: int, size: int, block: Path) -> Path:
    """``count`` result files of ``size`` bytes each, all different, cut from the block."""
    directory = work / name
    directory.mkdir(exist_ok=True)
    data = block.read_bytes()
    for i in range(count):
        path = directory / f"result-{i:03d}"
        if path.exists() and path.stat().st_size == size:
            continue
        with open(path, "wb") as f:
            left = size
            offset = (i * 7919 * 4096) % len(data)
            while left:
                piece = data[offset : offset + left]
                f.write(piece)
                left -= len(piece)
                offset = 0
    return directory
