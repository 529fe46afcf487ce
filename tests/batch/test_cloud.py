"""Inputs and outputs in object storage (a local moto S3 server): batches, resume, errors, no leaked secrets."""

from __future__ import annotations

import json

import pytest

from denoiselab.batch import DenoiseOptions, read_manifest, run_batch
from denoiselab.batch.storage import is_url, redact
from denoiselab.cli.main import main
from denoiselab.errors import DenoiselabError

OPTIONS = ["--method", "tv", "--sigma", "10", "--device", "cpu"]


def test_url_batch_writes_every_output_and_resumes(s3, capsys):
    bucket = s3.new_bucket()
    inputs = s3.upload_images(f"{bucket}/raw", 3)
    s3.fs.pipe_file(f"{bucket}/raw/notes.txt", b"not an image")  # not picked up by the pattern
    out = f"s3://{bucket}/out/"

    assert main(["denoise", f"s3://{bucket}/raw/*.png", "-o", out, *OPTIONS]) == 0
    first = capsys.readouterr()
    assert f"manifest s3://{bucket}/out/manifest.jsonl" in first.out
    records = read_manifest(f"s3://{bucket}/out/manifest.jsonl")
    assert sorted(r["input"] for r in records) == inputs and {r["status"] for r in records} == {"ok"}
    for record in records:
        assert record["output"].startswith(f"s3://{bucket}/out/")
        noisy, denoised = s3.read_image(record["input"]).array, s3.read_image(record["output"]).array
        assert denoised.shape == noisy.shape and denoised.std() < noisy.std()  # a whole image, smoother

    # Again: nothing to do. Then an output deleted remotely: only that one is redone.
    assert main(["denoise", f"s3://{bucket}/raw/*.png", "-o", out, *OPTIONS]) == 0
    assert "3 images, 3 already done (skipped)" in capsys.readouterr().out
    s3.fs.rm_file(f"{bucket}/out/im01.png")
    summary = run_batch([f"s3://{bucket}/raw/"], out, DenoiseOptions(method="tv", sigma255=10, device="cpu"))
    assert (summary.done, summary.skipped) == (1, 2)
    assert s3.fs.exists(f"{bucket}/out/im01.png")


def test_local_inputs_to_a_bucket_and_a_bucket_to_a_local_folder(s3, tmp_path):
    bucket = s3.new_bucket()
    s3.upload_images(f"{bucket}/raw", 2)
    local_out = tmp_path / "down"
    summary = run_batch([f"s3://{bucket}/raw/*.png"], local_out, DenoiseOptions(method="tv", sigma255=10,
                                                                                 device="cpu"))
    assert summary.done == 2 and sorted(p.name for p in local_out.iterdir()) == ["im00.png", "im01.png",
                                                                                  "manifest.jsonl"]
    up = run_batch([local_out / "im00.png", local_out / "im01.png"], f"s3://{bucket}/up", DenoiseOptions(
        method="tv", sigma255=10, device="cpu"), fmt="tif")
    assert up.done == 2 and sorted(s3.fs.ls(f"{bucket}/up")) == [f"{bucket}/up/{n}" for n in
                                                                 ("im00.tif", "im01.tif", "manifest.jsonl")]


def test_one_url_to_one_url_and_a_bad_object_is_recorded(s3, capsys):
    bucket = s3.new_bucket()
    [url] = s3.upload_images(f"{bucket}/raw", 1)
    assert main(["denoise", url, "-o", f"s3://{bucket}/single/a.tif", *OPTIONS]) == 0
    assert s3.read_image(f"s3://{bucket}/single/a.tif").array.shape == (32, 32, 1)
    assert not s3.fs.exists(f"{bucket}/single/manifest.jsonl")  # one file: no batch, no manifest
    capsys.readouterr()

    s3.fs.pipe_file(f"{bucket}/raw/broken.png", b"\x89PNG not really")
    assert main(["denoise", f"s3://{bucket}/raw/", "-o", f"s3://{bucket}/out", *OPTIONS]) == 2
    err = capsys.readouterr().err
    assert f"s3://{bucket}/raw/broken.png" in err and "/tmp" not in err.replace(str(s3.env["DENOISELAB_STATE_DIR"]), "")
    assert not s3.fs.exists(f"{bucket}/out/broken.png")  # no partial object


def test_the_output_appears_whole_or_not_at_all(s3, monkeypatch):
    """An encoder that dies half-way leaves no object (the upload happens after the file is complete)."""
    import denoiselab.io._write as writer

    bucket = s3.new_bucket()
    [url] = s3.upload_images(f"{bucket}/raw", 1)

    def dying(tmp, samples, fmt):
        tmp.write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_write_pillow", dying)
    from denoiselab.batch import denoise_file

    with pytest.raises(KeyboardInterrupt):
        denoise_file(url, f"s3://{bucket}/out/a.png", DenoiseOptions(method="tv", sigma255=10, device="cpu"))
    assert not s3.fs.exists(f"{bucket}/out/a.png")


def test_missing_bucket_denied_key_and_no_endpoint_are_one_line_errors(s3, tmp_path, monkeypatch, capsys):
    import s3fs

    bucket = s3.new_bucket()
    s3.upload_images(f"{bucket}/raw", 1)
    good = [f"s3://{bucket}/raw/*.png", "-o", f"s3://{bucket}/out/"]
    cases = {
        "missing bucket": ({}, [f"s3://{bucket}-nope/raw/*.png", "-o", f"s3://{bucket}/out/"]),
        "missing output bucket": ({}, [f"s3://{bucket}/raw/*.png", "-o", f"s3://{bucket}-nope/out/"]),
        "one missing object": ({}, [f"s3://{bucket}/raw/nope.png", "-o", f"s3://{bucket}/out/a.png"]),
        "denied key": ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-Zq81"}, good),
        "unknown key": ({"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY0042"}, good),
        "no endpoint": ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, good),
        "no package": ({}, ["nosuchproto://x/a.png", "-o", str(tmp_path / "o")]),
    }
    for name, (env, args) in cases.items():
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            s3fs.S3FileSystem.clear_instance_cache()
            code = main(["denoise", *args, *OPTIONS])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("denoiselab: error: "), (name, captured.err)
        for secret in ("wrong-secret-Zq81", "AKIAUNKNOWNKEY0042", s3.env["AWS_SECRET_ACCESS_KEY"], s3.env["AWS_ACCESS_KEY_ID"]):
            assert secret not in captured.err + captured.out, name
    s3fs.S3FileSystem.clear_instance_cache()
    assert not s3.fs.exists(f"{bucket}/out")  # nothing was written before the errors


def test_credentials_never_reach_the_manifest_the_logs_or_errors(s3, capsys):
    bucket = s3.new_bucket()
    s3.upload_images(f"{bucket}/raw", 2)
    s3.fs.pipe_file(f"{bucket}/raw/bad.png", b"nope")
    assert main(["denoise", f"s3://{bucket}/raw/", "-o", f"s3://{bucket}/out/", *OPTIONS]) == 2
    captured = capsys.readouterr()
    manifest_text = s3.fs.cat_file(f"{bucket}/out/manifest.jsonl").decode()
    assert len(manifest_text.splitlines()) == 3
    for secret in (s3.env["AWS_SECRET_ACCESS_KEY"], s3.env["AWS_ACCESS_KEY_ID"]):
        assert secret not in manifest_text + captured.out + captured.err
    assert redact(f"key {s3.env['AWS_SECRET_ACCESS_KEY']} in s3://u:p@b/k") == "key *** in s3://***@b/k"


def test_resume_uses_the_remote_manifest_when_the_journal_is_gone(s3, tmp_path, monkeypatch):
    """A driver on another machine (no local journal) resumes from the uploaded manifest."""
    bucket = s3.new_bucket()
    s3.upload_images(f"{bucket}/raw", 2)
    options = DenoiseOptions(method="tv", sigma255=10, device="cpu")
    assert run_batch([f"s3://{bucket}/raw/"], f"s3://{bucket}/out", options).done == 2
    monkeypatch.setenv("DENOISELAB_STATE_DIR", str(tmp_path / "another-machine"))
    again = run_batch([f"s3://{bucket}/raw/"], f"s3://{bucket}/out", options)
    assert (again.done, again.skipped) == (0, 2)
    lines = [json.loads(line) for line in s3.fs.cat_file(f"{bucket}/out/manifest.jsonl").decode().splitlines()]
    assert len(lines) == 2


def test_url_helpers():
    assert is_url("s3://b/k") and is_url("gs://b/k") and not is_url("C:/x.png") and not is_url("file:///x.png")
    with pytest.raises(DenoiselabError, match="unknown protocol"):
        run_batch(["nosuchproto://x/*.png"], "/tmp/never", DenoiseOptions(method="tv"))
