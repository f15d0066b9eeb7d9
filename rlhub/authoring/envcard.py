"""Environment cards: one markdown page per env, and ``docs/envs.md``, every registered env's card by domain.

A card says what an env asks and how it is scored, from the sources that already say it: the registry
entry (description, domain, tags, data license), the env module's docstring (task, output format,
version history), a real prompt and its gold completion (``env.examples("train", limit=1, seed=0)``),
the rubric (each reward's name, weight and docstring), the config dataclass (each field's type,
default and docstring), for tool envs the tools' schemas, the stored measurements
(``docs/measurements.json``) and the recorded verifier audit (``docs/audit.json``: false-negative and
false-positive rates, slowest scoring, the scripted-policy ladder). Nothing on a card is written twice.

``rlhub envs show ID --markdown`` prints one card; ``python -m rlhub.authoring.envcard --write docs/envs.md``
regenerates the docs page, and tests/test_envcard.py fails while the checked-in page is out of date.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
from pathlib import Path
from typing import Any

from rlhub.env.registry import DOMAINS, FAMILIES, EnvSpec, family, get_spec, list_envs
from rlhub.errors import RLHubError
from rlhub.resolve import resolve_module

GENERATED = (
    "<!-- Generated from registry.yaml and the env modules by "
    "`python -m rlhub.authoring.envcard --write docs/envs.md`; do not edit by hand. -->"
)
DOMAIN_TITLES = {"math": "Math", "code": "Code", "tool": "Tools", "instruction": "Instruction following"}


# ---------------------------------------------------------------------------------------------------
# Text: docstrings (reStructuredText-ish) to markdown.
# ---------------------------------------------------------------------------------------------------


def md_text(text: str, cell: bool = False) -> str:
    """Docstring text as one line of markdown: ````code```` -> ```code```, ``:mod:`x``` -> ```x```, ``<`` escaped
    outside code spans (it would open an HTML tag); in a table ``cell``, ``|`` escaped too."""
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", " ".join(text.split()))
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    parts = re.split(r"(`[^`]*`)", text)
    out = [p if p.startswith("`") and p.endswith("`") and len(p) > 1 else p.replace("<", "&lt;") for p in parts]
    joined = "".join(out)
    return joined.replace("|", "\\|") if cell else joined


def code(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it holds."""
    text = " ".join(str(text).split())
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fenced(text: str) -> str:
    """``text`` in a fenced block longer than any backtick run inside it (code answers hold ```python)."""
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`{3,}", text)), default=0) + 1)
    return f"{fence}text\n{text}\n{fence}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclasses.dataclass
class ModuleDoc:
    """An env module's docstring, split into the parts a card shows."""

    summary: str
    paragraphs: list[str]
    rewards: str
    history: list[str]


def module_doc(module: Any) -> ModuleDoc:
    """Split a docstring into its first line, its paragraphs, its ``Rewards`` paragraph and its ``Version history``."""
    doc = inspect.getdoc(module) or ""
    blocks = [b for b in re.split(r"\n\s*\n", doc) if b.strip()]
    summary = blocks.pop(0).strip() if blocks else ""
    paragraphs, rewards, history = [], "", []
    for block in blocks:
        if block.startswith("Version history"):
            for line in block.splitlines()[1:]:  # "v1: ..." starts an entry; deeper lines continue it
                if re.match(r"\s*v\d+\b", line) or not history:
                    history.append(line.strip())
                else:
                    history[-1] += " " + line.strip()
        elif block.startswith("Rewards"):
            rewards = block
        else:
            paragraphs.append(block)
    return ModuleDoc(summary, paragraphs, rewards, history)


def _parenthesized(text: str, start: int) -> str:
    """The text inside the parentheses that open at ``text[start]``."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1 : i]
    return text[start + 1 :]


def reward_description(name: str, fn: Any, rewards_paragraph: str) -> str:
    """What a reward checks: its function's docstring's first line, else what the module's ``Rewards``
    paragraph says in parentheses after ````name```` (without the weight, which has a column of its own)."""
    doc = inspect.getdoc(fn)
    if doc:
        return doc.split("\n\n")[0].replace("\n", " ")
    text = " ".join(rewards_paragraph.split())
    at = text.find(f"``{name}`` (")
    if at < 0:
        return ""
    said = _parenthesized(text, at + len(f"``{name}`` "))
    return re.split(r"[;,] weight\b", said)[0].strip()


def reference_differences(rubric: Any) -> list[str]:
    """Markdown blocks: for each reward cross-checked against a reference checker (its ``reference_check``,
    :class:`rlhub.rewards.rubric.ReferenceCheck`), where it decides otherwise on purpose, and why."""
    out = []
    for item in rubric.items:
        check = getattr(item.fn, "reference_check", None)
        if check is None:
            continue
        out.append(
            f"`{item.name}` is cross-checked against {md_text(check.reference)} in `{check.test}`; it decides "
            "otherwise only here, on purpose:"
        )
        out.append("\n".join(f"- {md_text(kind)}: {md_text(why)}" for kind, why in check.differences.items()))
    return out


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's doc: the string literal under it, else the comment on its line (base classes too)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        comments = {
            tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT
        }
        body = ast.parse(source).body[0].body
        for node, after in zip(body, [*body[1:], None]):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            literal = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            if literal and isinstance(after.value.value, str):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
            elif node.lineno in comments:
                docs[node.target.id] = comments[node.lineno]
    return docs


# ---------------------------------------------------------------------------------------------------
# The card's sections.
# ---------------------------------------------------------------------------------------------------


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def config_table(cls: type, defaults: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    """Fields of a config dataclass: name, type, the default ``rlhub.make`` uses, and the field's doc."""
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        value = defaults.get(f.name, _default(f))
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        shown = "required" if value is dataclasses.MISSING else code(repr(value))
        rows.append(
            [
                f"`{f.name}`",
                code(kind).replace("|", "\\|"),
                shown.replace("|", "\\|"),
                md_text(docs.get(f.name, ""), cell=True),
            ]
        )
    return table(["field", "type", "default", "description"], rows)


def messages_markdown(messages: list[dict]) -> str:
    parts = []
    for m in messages:
        who = m.get("role", "?") + (f" ({code(m['name'])})" if m.get("role") == "tool" and m.get("name") else "")
        parts.append(f"**{who}**\n\n{fenced(str(m.get('content', '')))}")
    return "\n\n".join(parts)


def tools_table(schemas: list[dict]) -> str:
    rows = []
    for schema in schemas:
        fn = schema.get("function", schema)
        params = fn.get("parameters", {}).get("properties", {})
        required = set(fn.get("parameters", {}).get("required", []))
        args = []
        for name, p in params.items():
            kind = p.get("type", "any") + ("" if name in required else ", optional")
            args.append(f"`{name}` ({kind}): {md_text(p.get('description', ''), cell=True)}")
        rows.append([f"`{fn.get('name')}`", "<br>".join(args) or "none", md_text(fn.get("description", ""), cell=True)])
    return table(["tool", "arguments", "what it does"], rows)


def _data_source(env: Any, spec: EnvSpec) -> str:
    """Where an env's examples come from, in the order they are looked for."""
    from rlhub.env.base import DatasetEnv, ProceduralEnv

    if isinstance(env, ProceduralEnv):
        return "generated on the fly; (seed, index) reproduces an example"
    if isinstance(env, DatasetEnv):
        online = getattr(env.config, "dataset", None)
        where = f"`path=`, `RLHUB_DATA/{env.data_name}/`" if env.data_name else "`path=`"
        shipped = spec.data.get("shipped")
        if shipped:
            where += f", the copy shipped in `data/{shipped}/` (with its LICENSE)"
        return where + (f", or the Hugging Face dataset `{online}` when online" if online else "")
    return "see the description"


def env_card(env: str | EnvSpec, level: int = 1, strict: bool = False) -> str:
    """The markdown card of one env.

    Args:
        env: A registered env id (``"countdown-v0"``, ``"rg/leg_counting-v2"``) or its spec.
        level: The heading level of the card's title (sections are one deeper).
        strict: Raise when the prompt example cannot be loaded (docs generation) instead of saying so.

    Returns:
        Markdown text ending in a newline.

    Example:
        >>> card = env_card("arithmetic-v1")
        >>> card.splitlines()[0], "| `correct` | 1 |" in card
        ('# `arithmetic-v1`', True)
    """
    spec = get_spec(env) if isinstance(env, str) else env
    instance = spec.make()
    module = resolve_module(spec.entry_point.partition(":")[0], what=f"registry entry {spec.id!r}")
    doc = module_doc(module)
    h1, h2 = "#" * level, "#" * (level + 1)
    multi_turn = bool(instance.multi_turn)
    turns = f"multi-turn, up to {instance.config.max_turns} assistant turns" if multi_turn else "single-turn"
    about = [
        ["domain", spec.domain],
        ["version", f"v{spec.version}"],
        ["tags", ", ".join(spec.tags) or "none"],
        ["turns", turns],
        ["data", _data_source(instance, spec)],
        ["data license", md_text(spec.license, cell=True)],
        *(
            [
                [
                    "data source",
                    md_text(f"{spec.data['source']}, {spec.data.get('version', 'version not recorded')}", cell=True),
                ]
            ]
            if spec.data
            else []
        ),
        ["entry point", f"`{spec.entry_point}`"],
        ["source", spec.source],
    ]
    out = [f"{h1} `{spec.id}`", md_text(spec.description), table(["", ""], about)]
    out += [md_text(p) for p in doc.paragraphs]

    out.append(f"{h2} Prompt example")
    try:
        example = instance.examples("train", limit=1, seed=0)[0]
    except (RLHubError, IndexError) as exc:
        if strict:
            raise RLHubError(f"{spec.id}: no example for its card: {exc}")
        out.append(f"_No example could be loaded: {md_text(str(exc))}_")
        example = None
    if example is not None:
        out.append(f"The first `train` example of seed 0 (`{example.id}`), as chat messages:")
        out.append(messages_markdown(example.prompt))
        gold = instance.gold_completion(example)
        transcript = gold if isinstance(gold, list) else [{"role": "assistant", "content": gold}]
        out.append("Its gold completion, which `rlhub validate` checks earns full marks:")
        out.append(messages_markdown(transcript))
        if multi_turn:
            out.append(f"{h2} Tools")
            out.append(tools_table(instance.toolbox_for(example).schemas))

    out.append(f"{h2} Rewards")
    out.append("The reward is the weighted sum; weight 0 logs a reward without optimizing it.")
    rows = [
        [f"`{r.name}`", f"{r.weight:g}", md_text(reward_description(r.name, r.fn, doc.rewards), cell=True)]
        for r in instance.rubric.items
    ]
    out.append(table(["reward", "weight", "what it checks"], rows))
    out += reference_differences(instance.rubric)

    out.append(f"{h2} Config")
    out.append(f"Override with `rlhub.make({spec.id!r}, field=value)`; defaults are those `rlhub.make` uses.")
    out.append(config_table(type(instance.config), spec.config))
    task_config_class = getattr(instance, "task_config_class", None)
    if task_config_class is not None:  # adapters over another library's tasks: that library's own options
        out.append(f"Fields of `task_config` ({task_config_class.__module__}.{task_config_class.__name__}):")
        out.append(config_table(task_config_class, {}, skip=("seed", "size")))

    from rlhub.authoring.audit import audit_section  # the recorded verifier audit (docs/audit.json)
    from rlhub.authoring.measurements import card_sections  # the stored measurements: Baseline, Difficulty, Trust, Cost

    out += card_sections(spec.id, level + 1)
    out += audit_section(spec.id, level + 1)

    out.append(f"{h2} Version history")
    out.append("\n".join(f"- {md_text(line)}" for line in doc.history) or "- not recorded in the module docstring")
    return "\n\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------
# docs/envs.md
# ---------------------------------------------------------------------------------------------------


def family_section(namespace: str, level: int = 2) -> str:
    """A family of ids made on demand (``rg/<task>-v2``): what it is and how to list and install it.

    Written from the family module's docstring and constants only, so the page is the same whether or
    not the family's optional library is installed.
    """
    module = family(namespace)
    doc = module_doc(module)
    h = "#" * level
    out = [f"{h} `{namespace}/<task>-v{module.VERSION}`", md_text(doc.summary.partition(": ")[2] or doc.summary)]
    out.append(
        f"Install with `{module.INSTALL}`; `rlhub envs list --family {namespace}` lists the ids, and "
        f"`rlhub envs show {namespace}/<task>-v{module.VERSION} --markdown` prints a card like those above."
    )
    out += [md_text(p) for p in doc.paragraphs]
    if doc.rewards:
        out.append(md_text(doc.rewards))
    excluded = getattr(module, "EXCLUDED", {})
    if excluded:
        out.append("Tasks not served, and why:")
        out.append("\n".join(f"- `{name}`: {md_text(why)}" for name, why in sorted(excluded.items())))
    if doc.history:  # a family's rewards change with its version, as an env's do
        out.append("Version history:")
        out.append("\n".join(f"- {md_text(line)}" for line in doc.history))
    return "\n\n".join(out)


def docs_page() -> str:
    """``docs/envs.md``: an index by domain, the card of each env in registry.yaml, and the id families.

    Deterministic: examples are seed 0 of procedural envs or of the data files ``RLHUB_DATA`` points at.
    """
    specs = [s for s in list_envs() if s.source == "rlhub"]  # registry.yaml's; not env packages installed here
    out = [
        "# Environments",
        GENERATED,
        f"{len(specs)} registered environments, by domain. Each card shows a real prompt and its gold "
        "completion, the rewards, the config fields and the version history; `rlhub envs show ID --markdown` "
        "prints one card. Id families, whose envs are made on demand rather than registered, follow the cards.",
    ]
    for domain in DOMAINS:
        in_domain = [s for s in specs if s.domain == domain]
        if in_domain:
            out.append(f"**{DOMAIN_TITLES[domain]}**")
            rows = [[f"[`{s.id}`](#{s.id.replace('.', '')})", md_text(s.description, cell=True)] for s in in_domain]
            out.append(table(["id", "description"], rows))
    for domain in DOMAINS:
        in_domain = [s for s in specs if s.domain == domain]
        if in_domain:
            out.append(f"## {DOMAIN_TITLES[domain]}")
            out += [env_card(s, level=3, strict=True).rstrip("\n") for s in in_domain]
    out.append("## Id families")
    out += [family_section(namespace, level=3) for namespace in sorted(FAMILIES)]
    return "\n\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlhub.authoring.envcard", description=__doc__.split("\n")[0])
    parser.add_argument("env_id", nargs="?", help="Print this env's card (default: the whole docs page).")
    parser.add_argument("--write", metavar="PATH", help="Write the docs page to PATH instead of printing it.")
    args = parser.parse_args(argv)
    text = env_card(args.env_id) if args.env_id else docs_page()
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
