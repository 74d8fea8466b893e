"""Building the stack's images with no network inside the build.

For each service :func:`prepare_context` assembles a build context on the host in a temp folder:
the service folder, plus ``wheels/`` (the service's wheel and every dependency, built for the base
image's Python) for Python services, plus the host-built ``dist/`` for the dashboard. The base
image is the configured one when the engine has it or can pull it, else the local Debian image of
:mod:`aiwf.engine.base_images`. Wheels are cached by a hash of the service's sources; an image
whose context hash equals the one it was built from is not built again::

    built = build_images(client, config, ["orchestrator"])
    built["orchestrator"].image_id      # 'sha256:...'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiwf.config import StackConfig
from aiwf.engine.base_images import BASE_REPOSITORY, ensure_base_image
from aiwf.engine.docker_client import engine_errors
from aiwf.engine.labels import LABEL_SERVICE
from aiwf.errors import EngineError, UsageError
from aiwf.paths import project_root, services_dir
from aiwf.stack import ServiceSpec, desired_services

if TYPE_CHECKING:
    import docker

LABEL_CONTEXT = "aiwf.context"
CACHE_REPOSITORY = "aiwf-cache"
#: Python of the local base image (Debian bookworm's python3).
LOCAL_BASE_PYTHON = "3.11"
#: Left out of every build context.
IGNORED = (
    "node_modules",
    "__pycache__",
    "*.egg-info",
    ".git",
    ".venv",
    "build",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "*.pyc",
    "wheels",
    "tests",
    "e2e",
)
#: The dashboard's sources: when any is newer than dist/index.html, dist is built again.
DASHBOARD_SOURCES = (
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
)
Progress = Callable[[str, str], None]


def _quiet(_service: str, _line: str) -> None:
    return None


@dataclass(frozen=True)
class BaseChoice:
    """The base image a build uses and why."""

    image: str
    python: str | None
    local: bool
    note: str = ""


@dataclass(frozen=True)
class BuiltImage:
    service: str
    tag: str
    image_id: str
    built: bool
    base: str
    notes: tuple[str, ...] = ()


@dataclass
class BuildContext:
    """A prepared build context: its folder, its content hash and the build arguments."""

    service: str
    folder: Path
    digest: str
    buildargs: dict[str, str]
    notes: list[str] = field(default_factory=list)


def cache_dir() -> Path:
    """``$AIWF_CACHE_DIR``, else ``$XDG_CACHE_HOME/aiwf``, else ``~/.cache/aiwf``."""
    configured = os.environ.get("AIWF_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "aiwf" if xdg else Path.home() / ".cache" / "aiwf"


def image_tag(spec: ServiceSpec) -> str:
    return f"{spec.image}:latest"


def _ignored(name: str) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(name, pattern) for pattern in IGNORED)


def source_files(folder: Path) -> list[Path]:
    """Files of a service folder that go into its context, sorted (``dist/`` included)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _ignored(d))
        found.extend(Path(root) / name for name in sorted(files) if not _ignored(name))
    return found


def hash_files(files: Iterable[Path], base: Path, digest: hashlib._Hash | None = None) -> str:
    digest = digest or hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(base)).encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def resolve_base(client: docker.DockerClient, wanted: str, progress: Progress) -> BaseChoice:
    """``wanted`` when the engine has it or can pull it, else the local Debian base image."""
    import docker.errors

    if wanted.startswith(f"{BASE_REPOSITORY}:"):
        return BaseChoice(
            ensure_base_image(client, progress=lambda line: progress("base", line)),
            LOCAL_BASE_PYTHON,
            True,
        )
    with engine_errors(f"look up the base image {wanted}"):
        try:
            image = client.images.get(wanted)
        except docker.errors.ImageNotFound:
            image = None
    if image is None:
        progress("base", f"pulling {wanted}")
        try:
            with engine_errors(f"pull {wanted}"):
                image = client.images.pull(wanted)
        except EngineError as error:
            kind = "nginx" if wanted.startswith("nginx") else "python"
            local = ensure_base_image(client, kind, progress=lambda line: progress("base", line))
            return BaseChoice(
                local,
                LOCAL_BASE_PYTHON,
                True,
                f"base image {wanted} is not here and cannot be pulled ({error}); "
                f"using the local {local}",
            )
    env = dict(item.partition("=")[::2] for item in image.attrs["Config"].get("Env") or [])
    version = env.get("PYTHON_VERSION")
    python = ".".join(version.split(".")[:2]) if version else None
    return BaseChoice(wanted, python, False)


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def _run(
    command: Sequence[str],
    what: str,
    progress: Progress,
    service: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    with subprocess.Popen(
        list(command),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        tail: list[str] = []
        for line in process.stdout:
            line = line.rstrip()
            if line:
                progress(service, line)
                tail = [*tail[-11:], line]
    if process.returncode != 0:
        detail = "\n  ".join(tail)
        raise EngineError(f"{what} failed (exit status {process.returncode}):\n  {detail}")


def wheel_commands(source: Path, out: Path, python: str) -> list[list[str]]:
    """The pip calls that fill ``out`` with wheels of ``source`` for ``python`` (X.Y)."""
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python == host:
        return [_pip("wheel", "--quiet", "--wheel-dir", str(out), str(source))]
    abi = "cp" + python.replace(".", "")
    return [
        _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)),
        _pip(
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--python-version",
            python,
            "--implementation",
            "cp",
            "--abi",
            abi,
            "--abi",
            "abi3",
            "--abi",
            "none",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "any",
            "--dest",
            str(out),
            "--find-links",
            str(out),
            str(source),
        ),
    ]


def ensure_wheels(service: str, source: Path, python: str, progress: Progress) -> Path:
    """The cached wheel folder of ``source`` for ``python``, built when its sources changed."""
    files = source_files(source)
    digest = hashlib.sha256(f"python{python}\0{sys.platform}\0".encode())
    key = hash_files(files, source, digest)[:16]
    target = cache_dir() / "wheels" / f"{service}-py{python}-{key}"
    if target.is_dir():
        os.utime(target)  # most recently used: kept by prune_cache
        progress(service, f"wheels cached ({target.name})")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{service}-", dir=target.parent))
    try:
        copy = work / "src"
        shutil.copytree(source, copy, ignore=lambda _d, names: [n for n in names if _ignored(n)])
        out = work / "wheels"
        out.mkdir()
        progress(service, f"building wheels for Python {python}")
        for command in wheel_commands(copy, out, python):
            _run(command, f"wheels for {service}", progress, service)
        if not target.exists():
            out.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def dashboard_dist_is_fresh(folder: Path) -> bool:
    index = folder / "dist" / "index.html"
    if not index.is_file():
        return False
    built = index.stat().st_mtime
    for name in DASHBOARD_SOURCES:
        path = folder / name
        paths = source_files(path) if path.is_dir() else [path] if path.exists() else []
        if any(item.stat().st_mtime > built for item in paths):
            return False
    return True


def ensure_dashboard_dist(folder: Path, progress: Progress) -> None:
    """``npm ci`` (when node_modules is missing or older than the lock) and ``npm run build``."""
    if dashboard_dist_is_fresh(folder):
        return
    env = node_environment()
    if not shutil.which("npm", path=env["PATH"]):
        raise EngineError(
            f"{folder}/dist is missing or stale and npm is not installed; run `make node`"
        )
    marker = folder / "node_modules" / ".package-lock.json"
    lock = folder / "package-lock.json"
    if not marker.is_file() or (lock.is_file() and lock.stat().st_mtime > marker.stat().st_mtime):
        progress("dashboard", "npm ci")
        npm_ci = ["npm", "ci", "--no-audit", "--no-fund"]
        _run(npm_ci, "npm ci", progress, "dashboard", folder, env)
    progress("dashboard", "npm run build")
    _run(["npm", "run", "build"], "npm run build", progress, "dashboard", folder, env)


def node_environment() -> dict[str, str]:
    """This process's environment, with the Node.js that ``make node`` provides first on PATH.

    On hosts whose packaged Node.js is too old for the dashboard, ``make node`` puts a newer one
    into ``.tools/node/bin`` of the checkout; builds started outside make find it too.
    """
    env = dict(os.environ)
    provided = project_root() / ".tools" / "node" / "bin"
    if provided.is_dir():
        env["PATH"] = f"{provided}{os.pathsep}{env.get('PATH', '')}"
    return env


def declared_buildargs(dockerfile: Path, wanted: dict[str, str]) -> dict[str, str]:
    """The build arguments of ``wanted`` that the Dockerfile declares (``ARG NAME``).

    The sandbox and tmux-sessions get the agent's uid this way: tmux lets only its server's own
    uid connect, and the agent must never be root.
    """
    text = dockerfile.read_text()
    return {name: value for name, value in wanted.items() if f"ARG {name}" in text}


def prepare_context(spec: ServiceSpec, base: BaseChoice, progress: Progress) -> BuildContext:
    """Assemble the build context of ``spec`` in a new temp folder (the caller removes it)."""
    source = services_dir() / spec.build_folder
    if not (source / "Dockerfile").is_file():
        raise EngineError(f"{source}/Dockerfile is missing; cannot build {spec.service}")
    if spec.service == "dashboard":
        ensure_dashboard_dist(source, progress)
    wheels: Path | None = None
    if (source / "pyproject.toml").is_file():
        wheels = ensure_wheels(spec.service, source, base.python or LOCAL_BASE_PYTHON, progress)
    folder = Path(tempfile.mkdtemp(prefix=f"aiwf-build-{spec.service}-"))
    try:
        shutil.copytree(
            source,
            folder,
            dirs_exist_ok=True,
            ignore=lambda _d, names: [n for n in names if _ignored(n)],
        )
        if wheels is not None:
            (folder / "wheels").mkdir()
            for wheel in sorted(wheels.iterdir()):
                os.link(wheel, folder / "wheels" / wheel.name)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    buildargs = {
        "BASE_IMAGE": base.image,
        **declared_buildargs(source / "Dockerfile", spec.build_args),
    }
    seed = hashlib.sha256(f"{sorted(buildargs.items())}\0".encode())
    files = source_files(folder)
    if wheels is not None:
        files += sorted((folder / "wheels").iterdir())
    context = BuildContext(spec.service, folder, hash_files(files, folder, seed), buildargs)
    if base.note:
        context.notes.append(base.note)
    return context


def _image_id(client: docker.DockerClient, tag: str) -> tuple[str | None, dict[str, str]]:
    import docker.errors

    with engine_errors(f"look up {tag}"):
        try:
            image = client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None, {}
    return str(image.id), dict(image.labels or {})


def cache_tag(service: str, digest: str) -> str:
    """``aiwf-cache:orchestrator-<context hash>``: the image built from exactly that context.

    Images carry no project; every stack on this engine (a test's, a second checkout's) whose
    context hashes the same reuses the image instead of building it again.
    """
    return f"{CACHE_REPOSITORY}:{service}-{digest[:20]}"


def _run_build(
    client: docker.DockerClient,
    spec: ServiceSpec,
    context: BuildContext,
    local_base: bool,
    progress: Progress,
) -> None:
    tag = image_tag(spec)
    with engine_errors(f"build {tag}"):
        stream = client.api.build(
            path=str(context.folder),
            tag=cache_tag(spec.service, context.digest),
            buildargs=context.buildargs,
            rm=True,
            forcerm=True,
            decode=True,
            pull=False,
            network_mode="none" if local_base else None,
            labels={LABEL_SERVICE: spec.service, LABEL_CONTEXT: context.digest},
        )
        tail: list[str] = []
        for chunk in stream:
            if "error" in chunk:
                detail = "\n  ".join(tail[-8:])
                raise EngineError(f"build {tag} failed: {chunk['error'].strip()}\n  {detail}")
            text = str(chunk.get("stream", "")).strip()
            if text:
                progress(spec.service, text)
                tail.append(text)


def build_one(
    client: docker.DockerClient,
    spec: ServiceSpec,
    base: BaseChoice,
    progress: Progress,
    force: bool = False,
) -> BuiltImage:
    """Give ``spec`` an image of its current context: kept, reused from the cache, or built."""
    tag = image_tag(spec)
    context = prepare_context(spec, base, progress)
    notes = tuple(context.notes)
    try:
        old_id, labels = _image_id(client, tag)
        if old_id and labels.get(LABEL_CONTEXT) == context.digest and not force:
            progress(spec.service, "up to date")
            return BuiltImage(spec.service, tag, old_id, False, base.image, notes)
        cached = cache_tag(spec.service, context.digest)
        cached_id, _labels = (None, {}) if force else _image_id(client, cached)
        if cached_id is None:
            progress(spec.service, f"building {tag} from {base.image}")
            _run_build(client, spec, context, base.local, progress)
        else:
            progress(spec.service, f"reusing the image built from the same sources ({cached})")
        new_id, _labels = _image_id(client, cached)
        if new_id is None:
            raise EngineError(f"build {tag} finished but the engine has no image {cached}")
        with engine_errors(f"tag {tag}"):
            if old_id and old_id != new_id:
                client.api.tag(old_id, spec.image, "previous")
            client.api.tag(new_id, spec.image, "latest")
        return BuiltImage(spec.service, tag, new_id, cached_id is None, base.image, notes)
    finally:
        shutil.rmtree(context.folder, ignore_errors=True)


#: Cached images and wheel folders kept per service (the newest ones).
KEEP_PER_SERVICE = 3


def prune_cache(client: docker.DockerClient, keep: int = KEEP_PER_SERVICE) -> list[str]:
    """Untag all but the newest ``keep`` cache images of each service; trim the wheel cache too.

    Untagging never deletes an image a container or another tag still uses; the engine frees
    the rest. Returns the tags removed.
    """
    with engine_errors("list the image cache"):
        images = client.api.images(name=CACHE_REPOSITORY)
    by_service: dict[str, list[tuple[int, str]]] = {}
    for image in images:
        for tag in image.get("RepoTags") or ():
            if tag.startswith(f"{CACHE_REPOSITORY}:"):
                service = tag.split(":", 1)[1].rsplit("-", 1)[0]
                by_service.setdefault(service, []).append((int(image.get("Created", 0)), tag))
    removed: list[str] = []
    for tags in by_service.values():
        for _created, tag in sorted(tags, reverse=True)[keep:]:
            try:
                with engine_errors(f"untag {tag}"):
                    client.api.remove_image(tag)
            except EngineError:
                continue  # a container still runs it: it stays until the next prune
            removed.append(tag)
    wheels = cache_dir() / "wheels"
    if wheels.is_dir():
        groups: dict[str, list[Path]] = {}
        for folder in wheels.iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                groups.setdefault(folder.name.rsplit("-", 1)[0], []).append(folder)
        for folders in groups.values():
            folders.sort(key=lambda f: f.stat().st_mtime, reverse=True)
            for old in folders[keep:]:
                shutil.rmtree(old, ignore_errors=True)
    return removed


def select_specs(config: StackConfig, services: Sequence[str] | None) -> list[ServiceSpec]:
    """The enabled services' specs, or those named (an unknown or disabled name is an error)."""
    specs = desired_services(config)
    if not services:
        return specs
    known = {spec.service: spec for spec in specs}
    unknown = [name for name in services if name not in known]
    if unknown:
        raise UsageError(
            f"unknown or disabled service: {', '.join(unknown)}; enabled: {', '.join(known)}"
        )
    return [known[name] for name in known if name in services]


def build_images(
    client: docker.DockerClient,
    config: StackConfig,
    services: Sequence[str] | None = None,
    progress: Progress = _quiet,
    force: bool = False,
) -> dict[str, BuiltImage]:
    """Build the named services (all enabled ones by default); service -> built image."""
    bases: dict[str, BaseChoice] = {}
    built: dict[str, BuiltImage] = {}
    for spec in select_specs(config, services):
        if spec.base_image not in bases:
            bases[spec.base_image] = resolve_base(client, spec.base_image, progress)
        built[spec.service] = build_one(client, spec, bases[spec.base_image], progress, force)
    if any(image.built for image in built.values()):
        prune_cache(client)
    return built
