"""A study shared by two processes over a real MySQL-compatible server (the local MariaDB), through the
PyMySQL driver that `mysql://` URLs get. Skipped, with the reason, where no server is reachable."""

from __future__ import annotations

import time

from servers import scratch_database
from studycheck import check_consistent, finish, search_args, start

from nas_res.results import Store, resolve_storage


def test_two_processes_share_a_study_on_mariadb(tmp_path):
    with scratch_database("mysql") as url:
        plain = url.replace("mysql+pymysql://", "mysql://")  # what a user types
        assert resolve_storage(plain).startswith("mysql+pymysql://")
        first = start(
            "search",
            *search_args(plain, "maria", "--trials", "3", "--epochs", "1", "--checkpoints", str(tmp_path / "a")),
        )
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if Store(url).study_config("maria"):
                    break
            except Exception:
                pass
            time.sleep(0.3)
        second = start("worker", "--study", "maria", "--storage", plain, "--checkpoints", str(tmp_path / "b"))
        outs = [finish(first), finish(second)]
        check_consistent(url, "maria", 3)
        assert all(o["counted"] == 3 for o in outs)
