"""Sweeps as the store keeps them: the runs queued together share a sweep id (and its name); '' for any other run."""

from __future__ import annotations

from .connection import Connection


class Sweeps(Connection):
    def sweep_ids(self, prefix: str) -> list[str]:
        """The sweep ids that start with `prefix`, in order."""
        return [r[0] for r in self.query("SELECT DISTINCT sweep_id FROM runs WHERE sweep_id != '' AND "
                                         "substr(sweep_id, 1, ?) = ? ORDER BY sweep_id", (len(prefix), prefix))]

    def sweep_run_ids(self, sweep_id: str) -> list[str]:
        """The ids of the sweep's runs in queue order: the order its file or setup made them."""
        return [r[0] for r in self.query("SELECT id FROM runs WHERE sweep_id = ? ORDER BY queue_order, created_at, id",
                                         (sweep_id,))]

    def sweep_totals(self) -> list[tuple[str, str, int, int, int, float | None, float]]:
        """One row per sweep, newest first: its id, name, runs, runs finished, runs queued or training, the best
        test accuracy of its runs, and when its first run was queued."""
        return self.query("SELECT sweep_id, max(sweep_name), count(*), sum(status = 'finished'), "
                          "sum(status IN ('queued', 'running')), max(test_acc), min(created_at) FROM runs "
                          "WHERE sweep_id != '' GROUP BY sweep_id ORDER BY min(created_at) DESC, sweep_id")
