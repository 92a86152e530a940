"""The node's local image store (no registry, no pulls).

Layout under the root (default /var/lib/podbus/images):

    layers/<hex>/        one unpacked layer (diff id sha256:<hex>), whiteouts
                         in overlayfs form (0/0 char devices, opaque xattr)
    images/<hex>.json    one image: config, layer diff ids (id sha256:<hex>)
    refs.json            {"name:tag": "sha256:<image id>"}
    lock                 flock for writers (the CLI and the agent share it)

Imports: an OCI image layout (directory or tar), a `docker save` tarball,
or a root filesystem (directory or tar) with an explicit config. Layers
are unpacked once and shared by every image and container using them. The
`busybox:latest` image is built from the host's busybox-static and is always
there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from services.node_agent.oci.imageref import (
    ImageConfig,
    ImageRecord,
    config_from_oci,
    normalize,
    oci_config_document,
    parse_reference,
    rootfs_config,
    safe_member_path,
    whiteout_target,
)

DEFAULT_IMAGE_ROOT = "/var/lib/podbus/images"
BUSYBOX_PATH = "/bin/busybox"
BUILTIN_BUSYBOX = "busybox:latest"
_BUSYBOX_LAYER_VERSION = b"podbus-busybox-layer-v1"


class ImageError(Exception):
    """An import or store operation failed; the message says why."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


class ImageStore:
    """The image store on disk. Methods are synchronous (imports are CLI
    work; the agent only resolves, which reads two small files)."""

    def __init__(self, root: str | Path = DEFAULT_IMAGE_ROOT, busybox: str = BUSYBOX_PATH) -> None:
        self.root = Path(root)
        self.busybox = busybox
        for sub in ("layers", "images", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.root / "lock").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _refs(self) -> dict[str, str]:
        try:
            data = json.loads((self.root / "refs.json").read_text())
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def _write_refs(self, refs: dict[str, str]) -> None:
        tmp = self.root / "refs.json.tmp"
        tmp.write_text(json.dumps(refs, indent=1, sort_keys=True))
        tmp.replace(self.root / "refs.json")

    def layer_dir(self, diff_id: str) -> Path:
        return self.root / "layers" / _hex(diff_id)

    def _image_file(self, image_id: str) -> Path:
        return self.root / "images" / f"{_hex(image_id)}.json"

    def _load(self, image_id: str, refs: dict[str, str]) -> ImageRecord | None:
        try:
            doc = json.loads(self._image_file(image_id).read_text())
        except FileNotFoundError:
            return None
        names = sorted(r for r, i in refs.items() if i == image_id)
        return ImageRecord.from_json(doc, names)

    # ------------------------------------------------------------ queries

    def resolve(self, ref: str) -> ImageRecord | None:
        """The image a pod's `image:` names, or None. busybox:latest is
        built on first use."""
        parsed = parse_reference(ref)
        refs = self._refs()
        if parsed.digest:
            found = self._load(parsed.digest, refs)
            if found is not None:
                return found
        key = str(parsed)
        image_id = refs.get(key)
        if image_id is None and key == BUILTIN_BUSYBOX:
            return self.ensure_busybox()
        if image_id is None:
            return None
        return self._load(image_id, refs)

    def images(self) -> list[ImageRecord]:
        refs = self._refs()
        out = []
        for f in sorted((self.root / "images").glob("*.json")):
            rec = self._load("sha256:" + f.stem, refs)
            if rec is not None:
                out.append(rec)
        return out

    def layer_dirs(self, image: ImageRecord) -> list[Path]:
        """Lower directories, bottom layer first."""
        return [self.layer_dir(d) for d in image.layers]

    def size(self, image: ImageRecord) -> int:
        total = 0
        for d in self.layer_dirs(image):
            for dirpath, _dirs, files in os.walk(d):
                for name in files:
                    with contextlib.suppress(OSError):
                        total += os.lstat(os.path.join(dirpath, name)).st_size
        return total

    # ------------------------------------------------------------ changes

    def tag(self, source: str, target: str) -> ImageRecord:
        with self._locked():
            src = self.resolve(source)
            if src is None:
                raise ImageError(f"image {source!r} not found")
            refs = self._refs()
            refs[normalize(target)] = src.id
            self._write_refs(refs)
            found = self._load(src.id, refs)
            assert found is not None
            return found

    def remove(self, ref: str) -> None:
        """Remove a name; the image (and layers no image uses, unless
        mounted) goes with its last name."""
        with self._locked():
            refs = self._refs()
            key = normalize(ref)
            image_id = refs.pop(key, None)
            if image_id is None:
                parsed = parse_reference(ref)
                ids = {i for i in refs.values()}
                if parsed.digest and self._image_file(parsed.digest).exists():
                    image_id = parsed.digest
                    refs = {k: v for k, v in refs.items() if v != image_id}
                elif not (self._image_file(ref).exists() and ref not in ids):
                    raise ImageError(f"image {ref!r} not found")
                else:
                    image_id = ref
            self._write_refs(refs)
            if image_id not in refs.values():
                self._image_file(image_id).unlink(missing_ok=True)
                self._gc_layers()

    def _gc_layers(self) -> None:
        used: set[str] = set()
        for f in (self.root / "images").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                used.update(_hex(d) for d in json.loads(f.read_text()).get("layers", []))
        try:
            mounts = Path("/proc/self/mountinfo").read_text()
        except OSError:
            mounts = ""
        for d in (self.root / "layers").iterdir():
            if d.name in used or str(d) in mounts:
                continue
            shutil.rmtree(d, ignore_errors=True)

    def _save_image(
        self, config_doc: bytes, config: ImageConfig, layers: Sequence[str], names: Sequence[str]
    ) -> ImageRecord:
        image_id = "sha256:" + hashlib.sha256(config_doc).hexdigest()
        record = ImageRecord(id=image_id, config=config, layers=tuple(layers), created=time.time())
        with self._locked():
            f = self._image_file(image_id)
            if not f.exists():
                tmp = f.with_suffix(".tmp")
                tmp.write_text(json.dumps(record.to_json()))
                tmp.replace(f)
            refs = self._refs()
            for name in names:
                refs[normalize(name)] = image_id
            self._write_refs(refs)
            found = self._load(image_id, refs)
        assert found is not None
        return found

    # ------------------------------------------------------------ layers

    def _unpack_layer(self, diff_id: str, tar_path: Path) -> None:
        """Unpack a layer tar once (compression auto-detected)."""
        dest = self.layer_dir(diff_id)
        if dest.exists():
            return
        tmp = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="layer-"))
        try:
            try:
                with tarfile.open(tar_path, "r:*") as tf:
                    extract_layer(tf, tmp)
            except tarfile.TarError as exc:
                raise ImageError(f"layer {diff_id}: cannot read {tar_path.name}: {exc}") from exc
            os.chmod(tmp, 0o755)
            try:
                tmp.rename(dest)
            except OSError:
                if not dest.exists():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _layer_from_dir(self, source: Path) -> str:
        """A root filesystem directory as one layer (copied)."""
        h = hashlib.sha256(f"{source.resolve()}:{time.time_ns()}".encode()).hexdigest()
        diff_id = "sha256:" + h
        tmp = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="layer-"))
        try:
            subprocess.run(["cp", "-a", f"{source}/.", str(tmp)], check=True)
            os.chmod(tmp, 0o755)
            tmp.rename(self.layer_dir(diff_id))
        except subprocess.CalledProcessError as exc:
            raise ImageError(f"copying {source}: {exc}") from exc
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return diff_id

    # ------------------------------------------------------------ imports

    def import_path(
        self,
        path: str | Path,
        name: str = "",
        *,
        entrypoint: Sequence[str] = (),
        cmd: Sequence[str] = (),
        env: Sequence[str] = (),
        user: str = "",
        workdir: str = "",
        stop_signal: str = "",
        rootfs: bool | None = None,
    ) -> ImageRecord:
        """Import whatever `path` is: an OCI layout or `docker save` output
        (directory or tar) keeps its config; anything else is a root
        filesystem with the config given here (`rootfs=True` forces that)."""
        src = Path(path)
        if not src.exists():
            raise ImageError(f"{src}: no such file or directory")
        if name:
            normalize(name)  # a bad name fails before any work
        if src.is_dir():
            kind = "rootfs" if rootfs else _dir_kind(src)
            if kind == "rootfs":
                cfg = rootfs_config(
                    entrypoint=entrypoint,
                    cmd=cmd,
                    env=env,
                    user=user,
                    workdir=workdir,
                    stop_signal=stop_signal,
                )
                diff_id = self._layer_from_dir(src)
                return self._save_image(
                    oci_config_document(cfg, [diff_id]), cfg, [diff_id], _names(name)
                )
            return self._import_archive_dir(src, kind, name)
        kind = "rootfs" if rootfs else _tar_kind(src)
        if kind == "rootfs":
            cfg = rootfs_config(
                entrypoint=entrypoint,
                cmd=cmd,
                env=env,
                user=user,
                workdir=workdir,
                stop_signal=stop_signal,
            )
            diff_id = _sha256_file(src)
            self._unpack_layer(diff_id, src)
            return self._save_image(
                oci_config_document(cfg, [diff_id]), cfg, [diff_id], _names(name)
            )
        tmp = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="import-"))
        try:
            with tarfile.open(src, "r:*") as tf:
                for member in tf.getmembers():
                    rel = safe_member_path(member.name)
                    if rel is None or not (member.isfile() or member.isdir()):
                        continue
                    target = tmp / rel
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fobj = tf.extractfile(member)
                    assert fobj is not None
                    with target.open("wb") as out:
                        shutil.copyfileobj(fobj, out, 1 << 20)
            return self._import_archive_dir(tmp, kind, name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _import_archive_dir(self, src: Path, kind: str, name: str) -> ImageRecord:
        if kind == "oci":
            return self._import_oci(src, name)
        return self._import_docker(src, name)

    def _import_oci(self, src: Path, name: str) -> ImageRecord:
        def blob(digest: str) -> Path:
            algo, _, hexd = digest.partition(":")
            p = src / "blobs" / algo / hexd
            if not p.is_file():
                raise ImageError(f"OCI layout {src}: blob {digest} missing")
            return p

        index = json.loads((src / "index.json").read_text())
        manifests = list(index.get("manifests", []))
        ref_name = ""
        while manifests:
            desc = manifests[0]
            ref_name = ref_name or desc.get("annotations", {}).get(
                "org.opencontainers.image.ref.name", ""
            )
            doc = json.loads(blob(desc["digest"]).read_text())
            if "manifests" in doc:  # an index: take the linux/amd64 entry or the first
                subs = doc["manifests"]
                pick = [
                    m
                    for m in subs
                    if m.get("platform", {}).get("os", "linux") == "linux"
                    and m.get("platform", {}).get("architecture", "amd64") == "amd64"
                ]
                manifests = pick or subs
                continue
            return self._import_manifest(
                blob(doc["config"]["digest"]),
                [blob(layer["digest"]) for layer in doc.get("layers", [])],
                _names(name) or ([ref_name] if ref_name and ":" in ref_name else []),
            )
        raise ImageError(f"OCI layout {src}: index.json lists no manifest")

    def _import_docker(self, src: Path, name: str) -> ImageRecord:
        manifest = json.loads((src / "manifest.json").read_text())
        if not manifest:
            raise ImageError(f"{src}: manifest.json lists no image")
        entry = manifest[0]
        tags = list(entry.get("RepoTags") or [])
        return self._import_manifest(
            src / entry["Config"],
            [src / layer for layer in entry.get("Layers", [])],
            _names(name) or tags,
        )

    def _import_manifest(
        self, config_path: Path, layer_paths: Sequence[Path], names: Sequence[str]
    ) -> ImageRecord:
        raw = config_path.read_bytes()
        doc = json.loads(raw)
        diff_ids = list(doc.get("rootfs", {}).get("diff_ids", []))
        if len(diff_ids) != len(layer_paths):
            raise ImageError(
                f"image config lists {len(diff_ids)} layers, the manifest {len(layer_paths)}"
            )
        for diff_id, layer in zip(diff_ids, layer_paths, strict=True):
            self._unpack_layer(diff_id, layer)
        if not names:
            raise ImageError("the archive names no image; give NAME[:TAG]")
        return self._save_image(raw, config_from_oci(doc.get("config")), diff_ids, names)

    # ------------------------------------------------------------ busybox

    def ensure_busybox(self) -> ImageRecord:
        """busybox:latest from the host's busybox-static: applet symlinks as
        `busybox --install -s` makes them, /etc/passwd with root and nobody,
        /tmp."""
        refs = self._refs()
        if BUILTIN_BUSYBOX in refs:
            found = self._load(refs[BUILTIN_BUSYBOX], refs)
            if found is not None:
                return found
        bb = Path(self.busybox)
        if not bb.is_file():
            raise ImageError(
                f"{bb} is missing: install busybox-static (apt-get install busybox-static) "
                "for the built-in busybox image"
            )
        h = hashlib.sha256(_BUSYBOX_LAYER_VERSION)
        h.update(bytes.fromhex(_hex(_sha256_file(bb))))
        diff_id = "sha256:" + h.hexdigest()
        dest = self.layer_dir(diff_id)
        if not dest.exists():
            tmp = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="busybox-"))
            try:
                build_busybox_rootfs(bb, tmp)
                tmp.rename(dest)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        cfg = rootfs_config(cmd=["sh"])
        return self._save_image(
            oci_config_document(cfg, [diff_id]), cfg, [diff_id], [BUILTIN_BUSYBOX]
        )


def _names(name: str) -> list[str]:
    return [name] if name else []


def _dir_kind(src: Path) -> str:
    if (src / "oci-layout").exists() and (src / "index.json").exists():
        return "oci"
    if (src / "manifest.json").exists() and not (src / "bin").exists():
        return "docker"
    return "rootfs"


def _tar_kind(src: Path) -> str:
    try:
        with tarfile.open(src, "r:*") as tf:
            names = set()
            for i, member in enumerate(tf):
                rel = safe_member_path(member.name)
                if rel is not None:
                    names.add(rel)
                if i > 4000:
                    break
    except tarfile.TarError as exc:
        raise ImageError(f"{src}: not a tar archive: {exc}") from exc
    if "oci-layout" in names and "index.json" in names:
        return "oci"
    if "manifest.json" in names and not any(n.startswith("bin/") for n in names):
        return "docker"
    return "rootfs"


def _inside(root: Path, rel: str) -> Path:
    """root/rel with no symlink among the existing parents (a layer must
    not write through a symlink out of its directory)."""
    target = root / rel
    parent = target.parent
    real = os.path.realpath(parent)
    if real != str(root) and not real.startswith(str(root) + "/"):
        raise ImageError(f"layer entry {rel!r} escapes the layer through a symlink")
    return target


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def extract_layer(tf: tarfile.TarFile, dest: Path) -> None:
    """Unpack one layer tar into dest, whiteouts in overlayfs form. Owners,
    modes (with setuid and sticky bits) and times are kept; entries that
    would escape dest are refused."""
    dest = Path(os.path.realpath(dest))
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    for member in tf:
        rel = safe_member_path(member.name)
        if rel is None:
            continue
        wo = whiteout_target(rel)
        if wo is not None:
            path, opaque = wo
            if opaque:
                d = dest / path if path else dest
                d.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    os.setxattr(d, "trusted.overlay.opaque", b"y")
            else:
                target = _inside(dest, path)
                target.parent.mkdir(parents=True, exist_ok=True)
                _remove(target)
                os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
            continue
        target = _inside(dest, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if member.isdir():
            if target.exists() and not target.is_dir():
                _remove(target)
            target.mkdir(exist_ok=True)
            dirs.append((target, member))
            continue
        if target.exists() or target.is_symlink():
            _remove(target)
        if member.issym():
            os.symlink(member.linkname, target)
        elif member.islnk():
            link_rel = safe_member_path(member.linkname)
            if link_rel is None:
                continue
            os.link(_inside(dest, link_rel), target)
            continue
        elif member.isfile():
            fobj = tf.extractfile(member)
            assert fobj is not None
            _write_file(target, fobj)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(
                target, kind | (member.mode & 0o7777), os.makedev(member.devmajor, member.devminor)
            )
        elif member.isfifo():
            os.mkfifo(target)
        else:
            continue
        _set_attrs(target, member)
    for target, member in reversed(dirs):
        _set_attrs(target, member)


def _write_file(target: Path, fobj: IO[bytes]) -> None:
    with target.open("wb") as out:
        shutil.copyfileobj(fobj, out, 1 << 20)


def _set_attrs(target: Path, member: tarfile.TarInfo) -> None:
    with contextlib.suppress(OSError):
        os.lchown(target, member.uid, member.gid)
    if not member.issym():
        with contextlib.suppress(OSError):
            os.chmod(target, member.mode & 0o7777)
    with contextlib.suppress(OSError):
        os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


def build_busybox_rootfs(busybox: Path, dest: Path) -> None:
    """A minimal root filesystem around a static busybox."""
    os.chmod(dest, 0o755)
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "root",
        "home",
        "var/www",
        "proc",
        "sys",
        "dev",
    ):
        (dest / d).mkdir(parents=True, exist_ok=True)
    tmp = dest / "tmp"
    tmp.mkdir(exist_ok=True)
    os.chmod(tmp, 0o1777)
    os.chmod(dest / "root", 0o700)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    os.chmod(dest / "bin" / "busybox", 0o755)
    out = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=True
    ).stdout
    for line in out.split():
        rel = line.strip().lstrip("/")
        if not rel or rel == "bin/busybox":
            continue
        link = dest / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            continue
        os.symlink("/bin/busybox", link)  # as `busybox --install -s` links them
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    (dest / "etc" / "hostname").write_text("busybox\n")
    for name in ("hosts", "resolv.conf"):
        (dest / "etc" / name).touch()


def image_summary(store: ImageStore, image: ImageRecord) -> dict[str, Any]:
    return {
        "id": image.id,
        "refs": list(image.refs),
        "layers": len(image.layers),
        "size": store.size(image),
        "created": image.created,
        "config": image.config.to_oci(),
    }
