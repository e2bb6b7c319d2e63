"""``sgrnn fetch-ptb DIR``: download Mikolov's simple-examples archive, check its MD5, extract
the three character files into DIR and check their SHA-256 (needs internet access)."""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

from sgrnn.errors import UserError
from sgrnn.tasks.ptb import ARCHIVE_MD5, ARCHIVE_URL, FILES, SHA256, load_ptb


def fetch_ptb(data_dir: str) -> Path:
    root = Path(data_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "simple-examples.tgz"
        try:
            with urllib.request.urlopen(ARCHIVE_URL, timeout=60) as r, open(archive, "wb") as f:
                total = int(r.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc="simple-examples.tgz") as bar:
                    while chunk := r.read(1 << 16):
                        f.write(chunk)
                        bar.update(len(chunk))
        except OSError as e:
            raise UserError(f"could not download {ARCHIVE_URL}: {e}") from None
        md5 = hashlib.md5(archive.read_bytes()).hexdigest()
        if md5 != ARCHIVE_MD5:
            raise UserError(f"{ARCHIVE_URL} has MD5 {md5}, expected {ARCHIVE_MD5}; nothing was written")
        with tarfile.open(archive) as tar:
            for split, name in FILES.items():
                member = tar.extractfile(f"./simple-examples/data/{name}")
                data = member.read()
                if hashlib.sha256(data).hexdigest() != SHA256[split]:
                    raise UserError(f"{name} in the archive fails its SHA-256 check; nothing more was written")
                (root / name).write_bytes(data)
    load_ptb(root)  # one more check, as training will read them
    print(f"PTB characters checked and written to {root}; train with task=ptb task.data_dir={root}")
    return root
