"""The image store: references, imports of each format, whiteouts, tags,
removal, and the built-in busybox image (no runc needed)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from services.node_agent.oci.image_cli import main as image_cli
from services.node_agent.oci.imageref import (
    ReferenceError,
    never_pull_message,
    normalize,
    parse_reference,
    safe_member_path,
    whiteout_target,
)
from services.node_agent.oci.images import ImageError, ImageStore


def test_reference_normalisation() -> None:
    assert normalize("busybox") == "busybox:latest"
    assert normalize("docker.io/library/busybox:1.36") == "busybox:1.36"
    assert normalize("docker.io/myorg/app") == "myorg/app:latest"
    assert normalize("localhost:5000/app:v1") == "localhost:5000/app:v1"
    ref = parse_reference("nginx:1.25@sha256:abc")
    assert (ref.name, ref.tag, ref.digest) == ("nginx", "1.25", "sha256:abc")
    with pytest.raises(ReferenceError):
        parse_reference("Busybox")
    with pytest.raises(ReferenceError):
        parse_reference("")


def test_member_paths_and_whiteouts() -> None:
    assert safe_member_path("./etc/passwd") == "etc/passwd"
    assert safe_member_path("/abs/x") == "abs/x"
    assert safe_member_path("../x") is None
    assert safe_member_path("./") is None
    assert whiteout_target("etc/.wh.motd") == ("etc/motd", False)
    assert whiteout_target("var/.wh..wh..opq") == ("var", True)
    assert whiteout_target("etc/motd") is None


def test_never_pull_message_says_how_to_import() -> None:
    msg = never_pull_message("nginx:1.25")
    assert msg.startswith('Container image "nginx:1.25" is not present with pull policy of Never')
    assert "podbus image import nginx:1.25" in msg


def _tar(entries: dict[str, bytes | None], *, symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o755
                tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_busybox_is_built_in(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    img = store.resolve("busybox")
    assert img is not None and img.refs == ("busybox:latest",)
    [layer] = store.layer_dirs(img)
    assert os.readlink(layer / "bin/sh") == "/bin/busybox"
    assert (layer / "usr/bin/wget").is_symlink()
    assert "nobody:x:65534:65534" in (layer / "etc/passwd").read_text()
    assert stat.S_IMODE((layer / "tmp").stat().st_mode) == 0o1777
    assert img.config.cmd == ("sh",)
    assert store.resolve("docker.io/library/busybox:latest") == img
    assert store.resolve("busybox:1.36") is None


def test_rootfs_tar_import_with_config_and_tags(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(_tar({"bin": None, "bin/app": b"#!/bin/sh\n"}))
    img = store.import_path(
        rootfs, "web:v1", entrypoint=["/bin/app"], cmd=["-p", "80"], env=["A=1"], user="1000"
    )
    assert img.config.entrypoint == ("/bin/app",)
    assert img.config.env[0].startswith("PATH=") and "A=1" in img.config.env
    again = store.import_path(
        rootfs, "web:v2", entrypoint=["/bin/app"], cmd=["-p", "80"], env=["A=1"], user="1000"
    )
    assert again.id == img.id and again.refs == ("web:v1", "web:v2")
    assert len(list((tmp_path / "store/layers").iterdir())) == 1  # unpacked once
    store.tag("web:v1", "web:latest")
    assert store.resolve("web") is not None
    store.remove("web:v1")
    store.remove("web:v2")
    assert store.resolve("web:latest") is not None
    store.remove("web:latest")
    assert store.resolve("web") is None
    assert not list((tmp_path / "store/layers").iterdir())
    with pytest.raises(ImageError):
        store.remove("web")


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are 0/0 devices and trusted xattrs (root)")
def test_docker_save_import_with_whiteouts(tmp_path: Path) -> None:
    l1 = _tar(
        {"etc": None, "etc/motd": b"hi", "var": None, "var/a": b"a"}, symlinks={"etc/evil": "/etc"}
    )
    l2 = _tar({"etc/.wh.motd": b"", "var/.wh..wh..opq": b"", "var/b": b"b"})
    config = json.dumps(
        {
            "config": {
                "Entrypoint": ["/bin/sh"],
                "Cmd": ["-c", "echo"],
                "User": "nobody",
                "StopSignal": "SIGQUIT",
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(l1), _digest(l2)]},
        }
    ).encode()
    save = tmp_path / "save.tar"
    with tarfile.open(save, "w") as tf:
        for name, data in {
            "cfg.json": config,
            "l1/layer.tar": l1,
            "l2/layer.tar": l2,
            "manifest.json": json.dumps(
                [
                    {
                        "Config": "cfg.json",
                        "RepoTags": ["demo:1"],
                        "Layers": ["l1/layer.tar", "l2/layer.tar"],
                    }
                ]
            ).encode(),
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    store = ImageStore(tmp_path / "store")
    img = store.import_path(save)
    assert img.refs == ("demo:1",) and img.id == _digest(config)
    assert img.config.user == "nobody" and img.config.stop_signal == "SIGQUIT"
    low, top = store.layer_dirs(img)
    assert (low / "etc/motd").read_bytes() == b"hi"
    assert os.readlink(low / "etc/evil") == "/etc"
    wo = (top / "etc/motd").lstat()
    assert stat.S_ISCHR(wo.st_mode) and wo.st_rdev == 0
    assert os.getxattr(top / "var", "trusted.overlay.opaque") == b"y"


def test_layer_cannot_write_through_symlink(tmp_path: Path) -> None:
    # a layer whose directory x is a symlink out of the layer
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("x")
        info.type = tarfile.SYMTYPE
        info.linkname = str(tmp_path / "outside")
        tf.addfile(info)
        info = tarfile.TarInfo("x/owned")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"no"))
    (tmp_path / "outside").mkdir()
    rootfs = tmp_path / "evil.tar"
    rootfs.write_bytes(buf.getvalue())
    store = ImageStore(tmp_path / "store")
    with pytest.raises(ImageError, match="escapes"):
        store.import_path(rootfs, "evil", rootfs=True)
    assert not (tmp_path / "outside/owned").exists()


def test_oci_layout_dir_import(tmp_path: Path) -> None:
    layer = _tar({"hello": b"world"})
    config = json.dumps(
        {"config": {"Cmd": ["/hello"]}, "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]}}
    ).encode()
    lay = tmp_path / "layout"
    blobs = lay / "blobs/sha256"
    blobs.mkdir(parents=True)
    for data in (layer, config):
        (blobs / _digest(data)[7:]).write_bytes(data)
    manifest = json.dumps(
        {"config": {"digest": _digest(config)}, "layers": [{"digest": _digest(layer)}]}
    ).encode()
    (blobs / _digest(manifest)[7:]).write_bytes(manifest)
    (lay / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (lay / "index.json").write_text(json.dumps({"manifests": [{"digest": _digest(manifest)}]}))
    store = ImageStore(tmp_path / "store")
    img = store.import_path(lay, "hello:1")
    assert img.config.cmd == ("/hello",)
    assert (store.layer_dirs(img)[0] / "hello").read_bytes() == b"world"


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tmp_path / "store")
    rootfs = tmp_path / "r"
    (rootfs / "bin").mkdir(parents=True)
    assert (
        image_cli(
            ["--root", root, "import", "x:1", str(rootfs), "--cmd", '["a","b"]', "--env", "K=V"]
        )
        == 0
    )
    assert image_cli(["--root", root, "tag", "x:1", "y"]) == 0
    assert image_cli(["--root", root, "ls"]) == 0
    out = capsys.readouterr().out
    assert "busybox:latest" in out and "x:1" in out and "y:latest" in out
    assert image_cli(["--root", root, "rm", "nope"]) == 1
    assert "not found" in capsys.readouterr().err
