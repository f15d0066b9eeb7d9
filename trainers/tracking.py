"""Metrics go to ``RUN_DIR/metrics.jsonl`` (always) and Weights & Biases (offline without an API key)."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

from rlhub.provenance import read_commit
from rlhub.wandb_mode import offline_unless_credentials

log = logging.getLogger(__name__)


def git_commit() -> str | None:
    """The full hash of the checkout rlhub's trainers run from, or None outside a checkout."""
    commit = read_commit(Path(__file__).parent)
    return commit.sha if commit else None


def git_label() -> str | None:
    """The checkout's commit as the cards name it (12 characters, ``+dirty`` when tracked files differ), or None."""
    commit = read_commit(Path(__file__).parent)
    return commit.label if commit else None


class Tracker:
    """Writes metrics on the main process only; other processes get a no-op tracker."""

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        *,
        use_wandb: bool,
        project: str,
        run_name: str,
        resume: bool,
        enabled: bool = True,
    ):
        self.run_dir = run_dir
        self.enabled = enabled
        self.wandb_run = None
        self.offline = False
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_file = (run_dir / "metrics.jsonl").open("a" if resume else "w")
        self.completions_file = (run_dir / "completions.jsonl").open("a" if resume else "w")
        if use_wandb:
            self._init_wandb(config, project, run_name, resume)

    def _init_wandb(self, config, project, run_name, resume):
        self.offline = offline_unless_credentials()
        try:
            import wandb
        except ImportError:
            log.warning("wandb is not installed; logging to metrics.jsonl only (pip install wandb)")
            return
        id_file = self.run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if resume and id_file.is_file() else secrets.token_hex(4)
        id_file.write_text(run_id)
        self.wandb_run = wandb.init(
            project=project,
            name=run_name,
            id=run_id,
            resume="allow",
            dir=str(self.run_dir),
            config=config,
            settings=wandb.Settings(silent=True, console="off"),
        )

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if not self.enabled:
            return
        self.metrics_file.write(json.dumps({"step": step, **metrics}) + "\n")
        self.metrics_file.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=step)

    def log_completions(self, rows: list[dict[str, Any]], step: int) -> None:
        """A table of prompt, completion, each reward and the advantage."""
        if not self.enabled or not rows:
            return
        for row in rows:
            self.completions_file.write(json.dumps({"step": step, **row}) + "\n")
        self.completions_file.flush()
        if self.wandb_run is not None:
            import wandb

            columns = list(rows[0])
            table = wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])
            self.wandb_run.log({"completions": table}, step=step)

    def alert(self, title: str, text: str) -> None:
        """A W&B alert (an e-mail or Slack message where the project has them set up); the caller logs it too."""
        if not self.enabled or self.wandb_run is None:
            return
        try:
            self.wandb_run.alert(title=title, text=text)
        except Exception as exc:  # offline runs and older wandb versions have no alerts: the log line stands
            log.debug("wandb alert not sent: %s", exc)

    def finish(self, summary: dict[str, Any]) -> str | None:
        """Close files and the W&B run; returns the `wandb sync` command for an offline run."""
        if not self.enabled:
            return None
        self.metrics_file.close()
        self.completions_file.close()
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        if self.wandb_run is None:
            return None
        self.wandb_run.summary.update(summary)
        run_dir = Path(self.wandb_run.dir).parent
        self.wandb_run.finish()
        return f"wandb sync {run_dir}" if self.offline else None
