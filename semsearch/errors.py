"""Errors meant for the person at the keyboard: the CLI prints them as one line and exits."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable


class SemsearchError(Exception):
    """A problem with the user's input or environment; the message says what to do."""

    exit_code = 2
    http_status = 400


class PartialFailure(SemsearchError):
    """Some work succeeded and was kept, some did not (e.g. arXiv ids that never arrived)."""

    exit_code = 1


class Unreachable(SemsearchError):
    """A source on the network could not be reached (no network, DNS down, every retry failed):
    the input may be right, so not the bad-input code 2; an API answers 502."""

    exit_code = 1
    http_status = 502


class IndexBusy(SemsearchError):
    """Another process holds the index's writer lock past the wait: nothing is wrong with the
    request, so not the bad-input code; the API answers 503 (try again)."""

    exit_code = 1
    http_status = 503


class OutOfResources(SemsearchError):
    """The machine, not the index: too many open files. Said as such (it was called damage, which
    invites a rebuild); exit 1 and 503, as the same request can succeed later."""

    exit_code = 1
    http_status = 503

    @classmethod
    def of(cls, err: BaseException) -> OutOfResources | None:
        if getattr(err, "errno", None) in (errno.EMFILE, errno.ENFILE):
            return cls("too many open files; raise the limit (`ulimit -n`) and run again")
        return None


class Stopped(Exception):
    """Asked to stop part-way (a server shutting down its watch): as after Ctrl-C, what was
    embedded waits in staging and the next run resumes from it. Not a SemsearchError: nothing is
    published on the way out."""


class NotFound(SemsearchError):
    """What was asked for is not there (a paper not in the index); the API answers 404."""

    http_status = 404


class IndexDamaged(SemsearchError):
    """A file of the index is damaged or missing and no intact generation can answer instead;
    the API answers 503 (the service cannot answer until the index is repaired or rebuilt).
    `damage` says what is damaged without where the index is: what a fallback to an older
    generation repeats."""

    http_status = 503

    def __init__(self, message: str, *, damage: str | None = None):
        super().__init__(message)
        self.damage = damage if damage is not None else message

    @classmethod
    def at(cls, directory: str | os.PathLike, damage: str) -> IndexDamaged:
        """`index at DIRECTORY is damaged: DAMAGE`, the one form of the message."""
        return cls(f"index at {directory} is damaged: {damage}", damage=damage)


class IndexUnwritable(SemsearchError):
    """The index cannot be written (a read-only file system, no permission); reading still works."""

    http_status = 503

    @classmethod
    def at(cls, directory: str | os.PathLike | None, reason: str) -> IndexUnwritable:
        """`cannot write to the index [at DIRECTORY] (REASON); it can still be searched`, the one form."""
        where = f" at {directory}" if directory is not None else ""
        return cls(f"cannot write to the index{where} ({reason}); it can still be searched")


# numpy's tofile (bm25s saves with it) on a full disk says "145263 requested and 15328 written", no errno.
_SHORT_WRITE = re.compile(r"\b\d+ requested and \d+ written\b")


_URL_AS_PATH = re.compile(r"^(https?|ftp|s3|gs|file):/+", re.IGNORECASE)


def missing_file(path: os.PathLike | str) -> SemsearchError:
    """The refusal of a file that is not there. A URL given where a file is read reaches here as a
    path, whose `//` the path collapsed ("https:/host/x", which nobody typed, said to be "no such
    file" read as a typo in the address): it is named as typed and said to be a URL, which the
    commands that read files do not download."""
    text = str(path)
    url = _URL_AS_PATH.match(text)
    if url:
        typed = f"{url[1]}://{text[url.end() :]}"
        return SemsearchError(f"cannot read {typed}: a URL, not a file (download it, then give the file)")
    return SemsearchError(f"cannot read {text}: no such file")


def no_room(err: BaseException) -> tuple[str, str] | None:
    """Why a write found no room, as (cause, what to do), in any of the ways a library says it; None
    when it is not that. A full disk (ENOSPC), a file-size limit (EFBIG: `ulimit -f`) and a quota
    (EDQUOT) are one case, said by its own cause: the last two were "index ... is damaged: disk I/O
    error". SQLite names no errno, and says "disk I/O error" (or "disk is full") for a write past the
    size limit: with a limit in place, that is taken for the limit."""
    code, text = getattr(err, "errno", None), str(err)
    limit = _file_size_limit()
    sqlite_write = code is None and ("disk I/O error" in text or "disk is full" in text)
    if code == errno.EFBIG or (limit is not None and sqlite_write):
        shown = f"{limit:,} bytes" if limit is not None else "its limit"
        return f"a file reached the size limit for files (ulimit -f: {shown})", "raise the limit and run again"
    if code == errno.EDQUOT:
        return "the disk quota is used up", "free space within the quota and run again"
    if code == errno.ENOSPC or "disk is full" in text or _SHORT_WRITE.search(text):
        return "the disk is full", "free space and run again"
    return None


def _file_size_limit() -> int | None:
    """The largest file this process may write (`ulimit -f`), or None when there is no limit."""
    try:
        import resource
    except ImportError:  # not on every platform
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` says there was no room to write (`no_room`)."""
    return no_room(err) is not None


class DiskFull(SemsearchError):
    """No room to write while the index was written (a full disk, a file-size limit, a quota); the
    published index is untouched (exit 2, like every other file that cannot be written)."""

    http_status = 507

    def __init__(self, message: str = ""):
        super().__init__(message or self.text("the disk is full", "free space and run again"))

    @staticmethod
    def text(cause: str, remedy: str) -> str:
        return (
            f"{cause}; nothing was published ({remedy}: it resumes any work already staged; delete the "
            "index's staging/ to drop that)"
        )

    @classmethod
    def of(cls, err: BaseException) -> DiskFull:
        """The error for `err`, naming its cause (the disk, a size limit, a quota)."""
        return cls(cls.text(*(no_room(err) or ("the disk is full", "free space and run again"))))


class OutputUnwritable(SemsearchError):
    """The command's own output (stdout) could not be written: a full disk behind `> file`, an I/O
    error. Said as such, and nothing about the index: it was "the disk is full; nothing was
    published" after `watch` or `ingest --json` had published, and for `search`, which writes nothing."""

    def __init__(self, err: OSError):
        super().__init__(f"could not write the output: {(err.strerror or str(err)).lower()}")


def network_reason(err: BaseException) -> str:
    """Why a web request failed, as a whole short phrase: a requests error's own text is a nested
    repr ("HTTPSConnectionPool(...): Max retries exceeded ... (Caused by NameResolutionError(...")
    that any length limit cuts mid-sentence."""
    from urllib.parse import urlsplit

    import requests

    request = getattr(err, "request", None)
    host = urlsplit(getattr(request, "url", "") or "").hostname or "the server"
    text = str(err)
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"{host} answered HTTP {err.response.status_code}"
    if isinstance(err, requests.Timeout):
        return f"{host} did not answer in time"
    if isinstance(err, requests.exceptions.SSLError):
        return f"the secure connection to {host} failed (certificate or TLS)"
    if isinstance(err, requests.ConnectionError):
        if "NameResolution" in text or "Name or service not known" in text or "getaddrinfo" in text:
            return f"cannot resolve {host} (no network, or DNS is down)"
        if "refused" in text.lower():
            return f"{host} refused the connection"
        return f"cannot connect to {host} (the connection failed or was dropped)"
    first = " ".join(text.split()) or type(err).__name__
    return first if len(first) <= 200 else first[:200].rsplit(" ", 1)[0] + " …"


def run_script(main: Callable[[], object]) -> None:
    """Run a script of scripts/ as the CLI runs a command: a refusal (no index at the path given, a
    file it cannot read) ends as one line on stderr and its exit code, not a traceback. The
    scripts check the figures; whoever runs them with a wrong path should read why at once."""
    import sys

    from semsearch.paper import one_line  # the CLI's one line

    try:
        main()
    except SemsearchError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
