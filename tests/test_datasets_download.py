"""mom.datasets.download: local HTTP and file:// downloads, checksums, safe extraction."""
import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from data_fixtures import make_cub, make_evil_tgz, make_tgz, serve_folder
from mom.datasets import CUB200, check_integrity, download_url, extract_archive
from mom.datasets import cub


@pytest.fixture
def cub_tgz(tmp_path):
    make_cub(tmp_path / "src")
    archive = make_tgz(tmp_path / "src" / "CUB_200_2011", tmp_path / "served" / "CUB_200_2011.tgz")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()




def test_http_download_verifies_md5_and_sha256(tmp_path, cub_tgz):
    archive, md5 = cub_tgz
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    with serve_folder(archive.parent) as url:
        out = download_url(f"{url}/{archive.name}", tmp_path / "dl" / "x.tgz", md5=md5,
                           sha256=sha, progress=False)
    assert out.read_bytes() == archive.read_bytes()
    assert os.listdir(out.parent) == ["x.tgz"]  # no temporary file left
    assert check_integrity(out, md5=md5.upper()) and not check_integrity(out, md5="0" * 32)


def test_wrong_checksum_names_file_and_both_digests_and_leaves_nothing(tmp_path, cub_tgz):
    archive, md5 = cub_tgz
    dest = tmp_path / "dl" / "x.tgz"
    with serve_folder(archive.parent) as url:
        with pytest.raises(ValueError) as err:
            download_url(f"{url}/{archive.name}", dest, md5="0" * 32, progress=False)
    msg = str(err.value)
    assert "x.tgz" in msg and "0" * 32 in msg and md5 in msg
    assert os.listdir(dest.parent) == []


def test_existing_valid_file_is_kept_and_bad_one_replaced(tmp_path, cub_tgz):
    archive, md5 = cub_tgz
    dest = tmp_path / "x.tgz"
    dest.write_bytes(archive.read_bytes())
    # a URL that cannot be fetched proves no download happens
    assert download_url("file:///nonexistent/x.tgz", dest, md5=md5, progress=False) == dest
    dest.write_bytes(b"stale")
    download_url(archive.as_uri(), dest, md5=md5, progress=False)
    assert dest.read_bytes() == archive.read_bytes()


def test_unreachable_url_names_it(tmp_path):
    with pytest.raises(OSError, match="nonexistent"):
        download_url("file:///nonexistent/y.tgz", tmp_path / "y.tgz", progress=False)


def test_http_404_raises(tmp_path):
    with serve_folder(tmp_path) as url:
        with pytest.raises(OSError, match="missing.tgz"):
            download_url(f"{url}/missing.tgz", tmp_path / "out" / "m.tgz", progress=False)


def test_cub_download_true_over_http(tmp_path, cub_tgz, monkeypatch):
    archive, md5 = cub_tgz
    with serve_folder(archive.parent) as url:
        monkeypatch.setattr(cub, "CUB_URL", f"{url}/{archive.name}")
        monkeypatch.setattr(cub, "CUB_MD5", md5)
        ds = CUB200(tmp_path / "data", "test", download=True, progress=False)
    assert len(ds) == 5 and (tmp_path / "data" / "CUB_200_2011.tgz").is_file()
    again = CUB200(tmp_path / "data", "test")  # now present: no download needed
    assert again.fingerprint() == ds.fingerprint()


def test_cub_download_repairs_a_missing_image(tmp_path, cub_tgz, monkeypatch):
    archive, md5 = cub_tgz
    monkeypatch.setattr(cub, "CUB_URL", archive.as_uri())
    monkeypatch.setattr(cub, "CUB_MD5", md5)
    first = CUB200(tmp_path, "train", download=True, progress=False)
    Path(first.paths[0]).unlink()
    with pytest.raises(FileNotFoundError, match=Path(first.paths[0]).name):
        CUB200(tmp_path, "train")
    assert CUB200(tmp_path, "train", download=True, progress=False).paths == first.paths
    assert Path(first.paths[0]).is_file()


def test_cub_download_from_file_url_with_wrong_md5(tmp_path, cub_tgz, monkeypatch):
    archive, _ = cub_tgz
    monkeypatch.setattr(cub, "CUB_URL", archive.as_uri())
    monkeypatch.setattr(cub, "CUB_MD5", "f" * 32)
    with pytest.raises(ValueError, match="checksum mismatch"):
        CUB200(tmp_path / "data", download=True, progress=False)
    assert not (tmp_path / "data" / "CUB_200_2011").exists()


@pytest.mark.parametrize("member", ["../evil.txt", "/tmp/evil_abs.txt", "a/../../evil.txt"])
def test_extract_refuses_path_traversal(tmp_path, member):
    archive = make_evil_tgz(tmp_path / "evil.tgz", member)
    with pytest.raises(ValueError, match="unsafe"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_extract_refuses_outward_symlink(tmp_path):
    archive = tmp_path / "link.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("sub/link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="refusing link"):
        extract_archive(archive, tmp_path / "out")


def test_extract_truncated_archive_names_it(tmp_path, cub_tgz):
    archive, _ = cub_tgz
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(ValueError, match="bad.tgz"):
        extract_archive(bad, tmp_path / "out")
