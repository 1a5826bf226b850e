"""Atomic, checksummed result files and checkpoints.

Every file is written to a temporary sibling and moved into place with ``os.replace``, so a
killed process leaves either the old file or the new one, never half of one. JSON results
carry a SHA-256 of their content (key ``checksum``) and torch files a SHA-256 trailer after
the payload (``torch.load`` ignores it), so a truncated or damaged file is detected on
reading (``CorruptFile``) and never used. A checkpoint keeps its predecessor
(``ckpt.prev.pt``) to fall back on.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a killed writer's; one writer per file (Snakemake's lock)
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` atomically."""
    _atomic(path, lambda f: f.write(data))


def write_text(path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (HTML pages, CSV tables)."""
    write_bytes(path, text.encode("utf-8"))


class CorruptFile(RuntimeError):
    """A result file or checkpoint that is truncated, damaged or unreadable."""


def _json_checksum(obj: dict) -> str:
    canonical = json.dumps(json.loads(json.dumps(obj)), sort_keys=True)  # as read back (int keys become strings)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def write_json(path, obj) -> None:
    """Write ``obj`` (a dict) as indented JSON with its ``checksum``, atomically."""
    obj = {**obj, "checksum": _json_checksum(obj)}
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=1, sort_keys=True).encode()))


def read_json(path) -> dict:
    """A JSON file written by ``write_json``, its checksum verified and removed.

    Raises:
        CorruptFile: unparseable JSON (e.g. truncated) or content that does not match its checksum,
            naming the file and the fix; FileNotFoundError: no such file.
    """
    try:
        obj = json.loads(Path(path).read_text())
    except ValueError as e:
        raise CorruptFile(f"corrupt {path} (not valid JSON: {e}); delete it to rerun its stage") from None
    if isinstance(obj, dict) and "checksum" in obj:
        stored = obj.pop("checksum")
        if stored != _json_checksum(obj):
            raise CorruptFile(f"corrupt {path} (content does not match its checksum); delete it to rerun its stage")
    return obj


_TRAILER = b"\nsha256:"


def save_torch(path, obj) -> None:
    """``torch.save`` atomically, with a SHA-256 trailer of the payload (checkpoints, snapshots)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    _atomic(path, lambda f: f.write(data + _TRAILER + hashlib.sha256(data).hexdigest().encode()))


def load_torch(path, what: str = "checkpoint"):
    """``torch.load(weights_only=True)`` on the CPU, after checking the SHA-256 trailer (a file
    without one, e.g. saved by plain ``torch.save``, relies on torch's own format checks).

    Raises:
        CorruptFile: a checksum mismatch, or a file without a trailer that does not load (truncated),
            naming it and the fix (delete it to start over);
        OSError: the file cannot be read now (permissions, a passing NFS error): not corruption;
        RuntimeError: an intact file torch refuses (e.g. a type outside ``weights_only``).
    """
    fix = "delete it to start that stage over"
    raw = Path(path).read_bytes()
    i = raw.rfind(_TRAILER)
    if i >= 0 and len(raw) - i == len(_TRAILER) + 64:
        if hashlib.sha256(raw[:i]).hexdigest().encode() != raw[i + len(_TRAILER):]:
            raise CorruptFile(f"corrupt {what} {path} (content does not match its checksum); {fix}")
        try:
            return torch.load(io.BytesIO(raw[:i]), map_location="cpu", weights_only=True)
        except Exception as e:  # intact bytes: a torch incompatibility, not damage; keep the file
            raise RuntimeError(f"torch cannot load the intact {what} {path} ({type(e).__name__}: {e})") from None
    try:
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CorruptFile(f"corrupt or unreadable {what} {path} ({type(e).__name__}); {fix}") from None


def _prev(ckpt: Path) -> Path:
    return ckpt.with_name(ckpt.stem + ".prev" + ckpt.suffix)


def save_checkpoint(path, obj) -> None:
    """``save_torch``, keeping the checkpoint it replaces as ``<name>.prev.pt`` (a hard link made
    before the new one moves into place: there is always a ``<name>.pt``)."""
    path = Path(path)
    if path.is_file():
        link = path.with_name(f".{_prev(path).name}.link.tmp")
        link.unlink(missing_ok=True)
        try:
            os.link(path, link)
            os.replace(link, _prev(path))
        except OSError:  # a filesystem without hard links: a copy, written atomically
            write_bytes(_prev(path), path.read_bytes())
    save_torch(path, obj)


def load_checkpoint(path):
    """The newest intact checkpoint of ``path`` (itself, else ``<name>.prev.pt``), or None.

    A corrupt one (``CorruptFile``) is never used: it is renamed ``<name>.corrupt`` and the
    fallback said on stderr (one line each). (A killed write's temporary is removed by the next
    write of the same file, ``_atomic``, and by ``finished`` at a stage's start.)
    """
    path = Path(path)
    for i, f in enumerate((path, _prev(path))):
        if not f.is_file():
            continue
        try:
            ck = load_torch(f)
        except CorruptFile as e:
            os.replace(f, f.with_name(f.name + ".corrupt"))
            print(f"warning: {str(e).split(';')[0]} (set aside as {f.name}.corrupt); "
                  f"{'trying the previous checkpoint' if i == 0 else 'starting over'}", file=sys.stderr)
            continue
        if i == 1:
            print(f"warning: resuming from the previous checkpoint {f}", file=sys.stderr)
        return ck
    return None


def remove_checkpoint(path) -> None:
    """Delete a finished run's checkpoint and its predecessor."""
    path = Path(path)
    path.unlink(missing_ok=True)
    _prev(path).unlink(missing_ok=True)


def save_npz(path, **arrays) -> None:
    """``np.savez_compressed`` atomically."""
    _atomic(path, lambda f: np.savez_compressed(f, **arrays))


def finished(out, upstream=None) -> dict | None:
    """The result of the run in ``out`` if it is finished, intact and current, else None.

    Finished: ``out/result.json`` exists. Intact: it reads (``read_json``); a corrupt one is
    said on stderr and trained again. Current: it is no older than ``upstream/result.json``,
    the search or dense run it was trained from, if any (Snakemake's mtime rule: a grouped job
    keeps its finished runs' results, its outputs being marked ``update`` in the Snakefile, so
    the stage itself must tell a stale one). A stale result is ignored (the stage trains again
    and replaces it) and a stale checkpoint deleted, so training does not resume from weights
    trained on the upstream run's earlier version. Temporaries of killed writes are removed.
    """
    out = Path(out)
    for tmp in (*out.glob(".*.tmp"), *out.glob("snapshots/.*.tmp")):
        tmp.unlink(missing_ok=True)
    up = Path(upstream) / "result.json" if upstream is not None else None
    up_mtime = up.stat().st_mtime if up is not None and up.is_file() else float("-inf")
    ckpt, result = out / "ckpt.pt", out / "result.json"
    if any(f.is_file() and f.stat().st_mtime < up_mtime for f in (ckpt, _prev(ckpt))):
        remove_checkpoint(ckpt)
    if not result.is_file() or result.stat().st_mtime < up_mtime:
        return None
    try:
        return read_json(result)
    except CorruptFile as e:
        print(f"warning: {str(e).split(';')[0]}; training the run again", file=sys.stderr)
        return None
