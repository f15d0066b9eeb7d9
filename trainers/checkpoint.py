"""Checkpoints: written atomically every N steps, so a crash (even kill -9) loses at most N steps.

Layout of ``RUN_DIR/checkpoints/step-000010/``:
    adapter/          the LoRA adapter in PEFT format (PeftModel.from_pretrained loads it),
                      or model/ with every weight when LoRA is off
    optimizer.pt, scheduler.pt
    rng-rank{r}.pt    python, numpy, torch and sampler RNG states of each process
    state.json        step, data position (and the curriculum's level rates and positions, with
                      training.curriculum) and the metrics history needed to resume
    critic.pt, critic_optimizer.pt   PPO only: the critic's trainable weights and its optimizer
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

KEEP = 2


def _step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:06d}"


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "sampler": generator.get_state(),
    }


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["sampler"])


def save(
    run_dir: Path,
    step: int,
    *,
    model,
    optimizer,
    scheduler,
    generator: torch.Generator,
    state: dict[str, Any],
    accelerator,
    extras: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``step`` into a temp folder, then rename it into place and update ``latest``.

    ``extras`` maps a file stem to a module (its trainable weights are saved) or an optimizer.
    """
    final = _step_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(generator), tmp / f"rng-rank{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        weights_dir = tmp / ("adapter" if hasattr(unwrapped, "peft_config") else "model")
        unwrapped.save_pretrained(weights_dir)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        for stem, obj in (extras or {}).items():
            torch.save(_state_of(accelerator, obj), tmp / f"{stem}.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        latest = run_dir / "checkpoints" / "latest"
        latest_tmp = latest.with_suffix(".tmp")
        latest_tmp.write_text(final.name)
        latest_tmp.replace(latest)
        older = sorted(p for p in final.parent.glob("step-*") if not p.name.endswith(".tmp"))[:-KEEP]
        for old in older:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = run_dir / "checkpoints" / "latest"
    if pointer.is_file():
        path = pointer.parent / pointer.read_text().strip()
        if (path / "state.json").is_file():
            return path
    done = sorted(p for p in (run_dir / "checkpoints").glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def _state_of(accelerator, obj) -> dict[str, Any]:
    if isinstance(obj, torch.nn.Module):
        module = accelerator.unwrap_model(obj)
        return {n: p.detach().cpu() for n, p in module.named_parameters() if p.requires_grad}
    return obj.state_dict()


def _restore(accelerator, obj, saved: dict[str, Any], where: Path) -> None:
    if isinstance(obj, torch.nn.Module):
        module = accelerator.unwrap_model(obj)
        missing = {n for n, p in module.named_parameters() if p.requires_grad} - set(saved)
        if missing:
            raise RuntimeError(f"{where} lacks {sorted(missing)[:3]}; was it saved by another recipe?")
        module.load_state_dict(saved, strict=False)
    else:
        obj.load_state_dict(saved)


def load(
    path: Path,
    *,
    model,
    optimizer,
    scheduler,
    generator: torch.Generator,
    accelerator,
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler, ``extras`` and this process's RNG; returns the saved state."""
    unwrapped = accelerator.unwrap_model(model)
    if hasattr(unwrapped, "peft_config"):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        adapter = path / "adapter"
        weights = adapter / "adapter_model.safetensors"
        set_peft_model_state_dict(unwrapped, load_file(str(weights)))
    else:
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(path / "model")
        unwrapped.load_state_dict(loaded.state_dict())
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    for stem, obj in (extras or {}).items():
        where = path / f"{stem}.pt"
        if not where.is_file():
            raise RuntimeError(f"{where} is missing: the checkpoint was written without a critic")
        _restore(accelerator, obj, torch.load(where, weights_only=False), where)
    rank_file = path / f"rng-rank{accelerator.process_index}.pt"
    if rank_file.is_file():
        restore_rng(torch.load(rank_file, weights_only=False), generator)
    return json.loads((path / "state.json").read_text())
