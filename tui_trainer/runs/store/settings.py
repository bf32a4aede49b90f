"""Settings that every process using the store shares: text values by key (the queue's pause, its runs per
device, its pack size, a study's link)."""

from __future__ import annotations

from .connection import Connection


class Settings(Connection):
    def setting(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_setting(self, key: str, value: str | None) -> None:
        """Set (or with None, clear) a setting that every process using this store shares."""
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def settings_under(self, prefix: str) -> list[tuple[str, str]]:
        """(key, value) of every setting whose key starts with `prefix`."""
        return self.query("SELECT key, value FROM settings WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
