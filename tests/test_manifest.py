"""The manifest's folder lock: concurrent shard jobs merge their task entries, and no lock file is left."""

import json
import multiprocessing as mp
import time

from qzhou_eval.store.lock import folder_lock
from qzhou_eval.store.manifest import MANIFEST_NAME, Manifest


def record_tasks(folder, job, n, ready=None):
    manifest = Manifest(folder / MANIFEST_NAME, {"job": job})
    if ready is not None:
        ready.set()
    for i in range(n):
        manifest.record_task(f"job{job}-task{i}", {"status": "done"})


def test_concurrent_jobs_keep_every_task_and_leave_no_lock_file(tmp_path):
    ctx = mp.get_context("fork")
    jobs = [ctx.Process(target=record_tasks, args=(tmp_path, job, 15)) for job in range(4)]
    for p in jobs:
        p.start()
    for p in jobs:
        p.join(60)
        assert p.exitcode == 0
    tasks = json.loads((tmp_path / MANIFEST_NAME).read_text())["tasks"]
    assert set(tasks) == {f"job{j}-task{i}" for j in range(4) for i in range(15)}
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]


def test_a_save_waits_while_another_job_holds_the_folder_lock(tmp_path):
    ctx = mp.get_context("spawn")  # a forked child would inherit the held lock's descriptor
    ready = ctx.Event()
    with folder_lock(tmp_path):
        job = ctx.Process(target=record_tasks, args=(tmp_path, 1, 1, ready))
        job.start()
        assert ready.wait(60)  # the job is about to save
        time.sleep(1.0)
        assert job.is_alive() and not (tmp_path / MANIFEST_NAME).exists()
    job.join(30)
    assert job.exitcode == 0 and "job1-task0" in json.loads((tmp_path / MANIFEST_NAME).read_text())["tasks"]


def test_the_one_atomic_writer_fsyncs_and_never_shares_a_temp_name(tmp_path, monkeypatch):
    import os

    from qzhou_eval.files import StagedFile, staged

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    a, b = StagedFile(tmp_path / "x.json"), StagedFile(tmp_path / "x.json")
    assert a.tmp != b.tmp  # two writers of one file (shard jobs) never write into each other's temp file
    a.tmp.write_text("1")
    b.tmp.write_text("2")
    a.publish()
    b.publish()
    assert (tmp_path / "x.json").read_text() == "2" and len(synced) == 2
    try:
        with staged(tmp_path / "y.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed while writing")
    except RuntimeError:
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]  # no target, no temp file left
